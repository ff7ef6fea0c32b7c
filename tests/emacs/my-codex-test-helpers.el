;;; my-codex-test-helpers.el --- Shared set-up of the my-codex ERT tests  -*- lexical-binding: t; -*-

;;; Commentary:

;; The tests run `emacs -Q --batch' against the real sidecar, the real
;; Codex and the scripted model server.  tests/test_emacs.py sets:
;;   MY_CODEX_TEST_PYTHON   the Python that runs `-m codex_sessions serve'
;;   MY_CODEX_TEST_PROJECT  a fresh git project named `ultra'
;;   MY_CODEX_TEST_RESULT   a file that receives the results as Lisp data
;; plus the sidecar's own CODEX_HOME, CODEX_SESSIONS_STATE_DIR and
;; CODEX_SESSIONS_CODEX.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'my-codex)

(defvar my-codex-test-project
  (file-name-as-directory (or (getenv "MY_CODEX_TEST_PROJECT")
                              (error "MY_CODEX_TEST_PROJECT is not set")))
  "The project the tests work in.")

(defvar my-codex-test-other-project
  (and (getenv "MY_CODEX_TEST_OTHER") (file-name-as-directory (getenv "MY_CODEX_TEST_OTHER")))
  "A second project, named `other'.")

(setq my-codex-sidecar-command
      (list (or (getenv "MY_CODEX_TEST_PYTHON") "python3") "-m" "codex_sessions" "serve")
      my-codex-request-timeout 60
      my-codex-pop-to-buffer-on-start nil)

(defvar my-codex-test-results nil
  "Alist of results handed back to pytest.")

(defvar my-codex-test-notified nil
  "Calls of `my-codex-notify-function', most recent first, as (SESSION TEXT).")

(setq my-codex-notify-function
      (lambda (session text) (push (list session text) my-codex-test-notified)))

(defun my-codex-test-result (key value)
  "Record VALUE under KEY and write every result to MY_CODEX_TEST_RESULT.
The file holds a list of (KEY VALUE) lists."
  (setf (alist-get key my-codex-test-results)
        (if (stringp value) (substring-no-properties value) value))
  (when-let ((file (getenv "MY_CODEX_TEST_RESULT")))
    (let ((coding-system-for-write 'utf-8-unix)
          (print-length nil) (print-level nil) (print-escape-newlines t))
      (with-temp-file file
        (prin1 (mapcar (lambda (cell) (list (car cell) (cdr cell)))
                       (reverse my-codex-test-results))
               (current-buffer))))))


(defvar my-codex-test-messages nil
  "Messages shown in the echo area during the test, most recent first.")

(advice-add 'message :around
            (lambda (orig format &rest args)
              (let ((text (apply orig format args)))
                (when text (push text my-codex-test-messages))
                text))
            '((name . my-codex-test-record-messages)))

(defun my-codex-test-wait (what predicate &optional timeout)
  "Wait until PREDICATE returns non-nil, or fail after TIMEOUT seconds naming WHAT.
Return PREDICATE's value."
  (let ((deadline (+ (float-time) (or timeout 30)))
        value)
    (while (and (not (setq value (funcall predicate)))
                (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (or value (ert-fail (list 'timed-out-waiting-for what)))))

(defun my-codex-test-session (name)
  "Return the cached session plist named NAME in the test project, or nil.
A live session comes first, else the most recently updated one."
  (let ((root (my-codex--root-key my-codex-test-project))
        (found nil))
    (maphash (lambda (_ s)
               (when (and (equal (plist-get s :name) name)
                          (equal (plist-get (plist-get s :project) :root) root))
                 (push s found)))
             my-codex--sessions)
    (car (sort found (lambda (a b)
                       (let ((la (my-codex--live-p a)) (lb (my-codex--live-p b)))
                         (if (not (eq la lb)) la
                           (string> (plist-get a :updatedAt) (plist-get b :updatedAt)))))))))

(defun my-codex-test-status (name)
  "Return the cached status of the session NAME."
  (plist-get (my-codex-test-session name) :status))

(defun my-codex-test-wait-status (name statuses &optional timeout)
  "Wait until session NAME has one of STATUSES (a string or a list); TIMEOUT seconds."
  (let ((statuses (if (stringp statuses) (list statuses) statuses)))
    (my-codex-test-wait (list name statuses)
                        (lambda () (member (my-codex-test-status name) statuses))
                        timeout)))

(defun my-codex-test-wait-turns (name turns &optional timeout)
  "Wait until session NAME has finished TURNS turns and is idle; TIMEOUT seconds."
  (my-codex-test-wait (list name 'turns turns)
                      (lambda ()
                        (let ((s (my-codex-test-session name)))
                          (and s (>= (or (plist-get s :turns) 0) turns)
                               (equal (plist-get s :status) "idle"))))
                      (or timeout 60)))

(defun my-codex-test-text (buffer)
  "Return the text of BUFFER without properties."
  (with-current-buffer buffer
    (buffer-substring-no-properties (point-min) (point-max))))

(defun my-codex-test-wait-text (buffer regexp &optional timeout)
  "Wait until BUFFER's text matches REGEXP; TIMEOUT seconds."
  (my-codex-test-wait (list buffer regexp)
                      (lambda () (string-match-p regexp (my-codex-test-text buffer)))
                      timeout))

(defun my-codex-test-header ()
  "Return the current buffer's header line as text.
`format-mode-line' gives nothing in batch mode, so evaluate the forms."
  (my-codex-test-format header-line-format))

(defun my-codex-test-format (format)
  "Return the mode-line construct FORMAT as text: strings, :eval forms and lists of them."
  (cond ((null format) "")
        ((stringp format) (substring-no-properties format))
        ((eq (car-safe format) :eval) (my-codex-test-format (eval (cadr format) t)))
        ((listp format) (mapconcat #'my-codex-test-format format ""))
        (t (error "Unexpected header line %S" format))))

(defmacro my-codex-test-in-project (&rest body)
  "Run BODY in the test project, with no handler errors allowed.
The tests of a module share one daemon, so the sessions of this
test's projects are killed at the end."
  (declare (indent 0) (debug t))
  `(progn
     (set-buffer (my-codex-test-home))
     (setq my-codex--handler-errors nil)
     (unwind-protect
         (condition-case err
             (progn ,@body)
           ((error ert-test-failed)
            (my-codex-test-dump-stderr)
            (signal (car err) (cdr err))))
       (my-codex-test-clean-up))
     (should-not my-codex--handler-errors)))

(defvar my-codex-test-keep nil
  "Non-nil: leave the test's sessions running at its end (for another Emacs).")

(defun my-codex-test-clean-up ()
  "Kill the live sessions of the test's projects, if Emacs is connected."
  (when (and (not my-codex-test-keep) (my-codex--live-connection))
    (dolist (project (list my-codex-test-project my-codex-test-other-project))
      (when project
        (ignore-errors (my-codex-kill-all-sessions nil project))))))

(defun my-codex-test-roots ()
  "Return the roots of the test's projects as the sidecar writes them."
  (mapcar #'my-codex--root-key
          (delq nil (list my-codex-test-project my-codex-test-other-project))))

(defun my-codex-test-mine (sessions)
  "Return those of SESSIONS that belong to this test's projects."
  (let ((roots (my-codex-test-roots)))
    (seq-filter (lambda (s) (member (plist-get (plist-get s :project) :root) roots))
                sessions)))

(defun my-codex-test-dump-stderr ()
  "Print the sidecar's standard error, to explain a failure."
  (let ((buf (get-buffer " *my-codex stderr*")))
    (when (buffer-live-p buf)
      (message "---- sidecar stderr ----\n%s\n---- end of sidecar stderr ----"
               (with-current-buffer buf (buffer-string)))))
  (let ((events (get-buffer "*my-codex events*")))
    (when (buffer-live-p events)
      (message "---- events (tail) ----\n%s\n---- end of events ----"
               (with-current-buffer events
                 (buffer-substring-no-properties (max (point-min) (- (point-max) 8000))
                                                 (point-max)))))))

(defun my-codex-test-home ()
  "Return a plain buffer whose `default-directory' is the test project."
  (with-current-buffer (get-buffer-create "*my-codex-test*")
    (setq default-directory my-codex-test-project)
    (current-buffer)))

(defun my-codex-test-user-error (function &rest args)
  "Call FUNCTION with ARGS; return the message of the `user-error' it signals.
Fail if it signals none, or another error."
  (condition-case err
      (progn (apply function args)
             (ert-fail (list 'no-user-error function args)))
    (user-error (error-message-string err))))

(defun my-codex-test-command (command)
  "Run COMMAND as the command loop would, after `last-command'."
  (let ((this-command command))
    (call-interactively command)
    (setq last-command this-command)))

(defun my-codex-test-flag (name)
  "Leave the flag NAME for another Emacs of the same test."
  (write-region "" nil (expand-file-name name (getenv "MY_CODEX_TEST_FLAGS")) nil 'quiet))

(defun my-codex-test-flag-p (name)
  "Return non-nil when another Emacs of the same test left the flag NAME."
  (file-exists-p (expand-file-name name (getenv "MY_CODEX_TEST_FLAGS"))))

(provide 'my-codex-test-helpers)
;;; my-codex-test-helpers.el ends here
