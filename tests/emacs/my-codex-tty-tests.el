;;; my-codex-tty-tests.el --- my-codex.el in a real terminal frame  -*- lexical-binding: t; -*-

;;; Commentary:

;; `format-mode-line' gives nothing in batch mode, so the header line and
;; the global mode line are checked in `emacs -nw' on a pseudo-terminal
;; (tests/test_emacs.py runs it under script(1)).  Run with
;; `my-codex-tty-run', which writes *Messages* to MY_CODEX_TEST_MESSAGES
;; and exits with 0 only if every test passed.

;;; Code:

(require 'my-codex-test-helpers)

(ert-deftest my-codex-tty-test-header-and-mode-line ()
  "In a real frame the header line and the global mode line show the session."
  (should-not noninteractive)
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "run-approved: touch tty.txt")))
      (my-codex-test-wait-status "main" "waiting")
      (switch-to-buffer buf)
      (redisplay t)
      (let ((header (format-mode-line header-line-format nil (selected-window) buf))
            (mode-line (format-mode-line mode-line-format nil (selected-window) buf)))
        (my-codex-test-result 'header header)
        (my-codex-test-result 'mode-line mode-line)
        (should (string-match-p "ultra/main +waiting +[0-9]+s +turns 1 +1 approval pending" header))
        (should (string-match-p "Codex\\[1 waiting\\]" mode-line))
        (should-not (string-match-p "\\*invalid\\*" mode-line)))
      (my-codex-accept)
      (my-codex-test-wait-turns "main" 1)
      (redisplay t)
      (let ((header (format-mode-line header-line-format nil (selected-window) buf))
            (mode-line (format-mode-line mode-line-format nil (selected-window) buf)))
        (my-codex-test-result 'header-after header)
        ;; Once a turn ended, the model Codex chose and the tokens it used.
        (should (string-match-p "ultra/main +idle +[0-9]+s +turns 1 +mock-model +tokens [0-9.]+k?/[0-9.]+k?\\'"
                                header))
        (should-not (string-match-p "Codex\\[" mode-line))
        (should-not (string-match-p "\\*invalid\\*" mode-line))))))

(defun my-codex-tty-run ()
  "Run the TTY tests, save *Messages* and exit: 0 if all passed."
  (let ((stats (ert-run-tests-batch "\\`my-codex-tty-test-")))
    (when-let ((file (getenv "MY_CODEX_TEST_MESSAGES")))
      (with-current-buffer (messages-buffer)
        (let ((coding-system-for-write 'utf-8-unix))
          (write-region (point-min) (point-max) file))))
    (kill-emacs (if (and (> (ert-stats-completed-expected stats) 0)
                         (zerop (ert-stats-completed-unexpected stats)))
                    0 1))))

(provide 'my-codex-tty-tests)
;;; my-codex-tty-tests.el ends here
