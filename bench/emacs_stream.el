;;; emacs_stream.el --- Benchmark: my-codex.el taking streamed agent text  -*- lexical-binding: t; -*-

;; Run by bench/editors.py as `emacs -Q --batch -L elisp -l bench/emacs_stream.el'.
;; Starts a session through the front-end's public entry, `my-codex-start-session',
;; with a prompt that streams BENCH_BYTES of agent text, and samples the session
;; buffer's size with Emacs's own CPU time and the wall clock until it has grown by
;; BENCH_BYTES or BENCH_LIMIT seconds pass.  Samples go to BENCH_OUT, one
;; "GROWTH CPU WALL" line each.

(require 'my-codex)

(let* ((out (getenv "BENCH_OUT"))
       (bytes (string-to-number (getenv "BENCH_BYTES")))
       (limit (string-to-number (getenv "BENCH_LIMIT")))
       (default-directory (file-name-as-directory (getenv "BENCH_PROJECT")))
       (my-codex-sidecar-command (split-string-shell-command (getenv "BENCH_SIDECAR")))
       (my-codex-pop-to-buffer-on-start nil)
       (my-codex-request-timeout 60)
       (start (float-time))
       (buf (my-codex-start-session "bench" (format "%s: %d" (getenv "BENCH_DIRECTIVE") bytes)))
       (base (buffer-size buf))
       (last -1)
       (samples nil))
  (push (list 0 (float-time (get-internal-run-time)) (float-time)) samples)
  (while (and (< (- (buffer-size buf) base) bytes)
              (< (- (float-time) start) limit))
    (accept-process-output nil 0.02)
    (let ((size (- (buffer-size buf) base)))
      (unless (= size last)
        (setq last size)
        (push (list size (float-time (get-internal-run-time)) (float-time)) samples))))
  (with-temp-file out
    (dolist (s (nreverse samples))
      (insert (format "%d %.6f %.6f\n" (nth 0 s) (nth 1 s) (nth 2 s)))))
  (ignore-errors (my-codex-shutdown))
  (kill-emacs 0))
