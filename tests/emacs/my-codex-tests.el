;;; my-codex-tests.el --- ERT tests of my-codex.el against the real sidecar  -*- lexical-binding: t; -*-

;;; Commentary:

;; Each test is run in its own `emacs -Q --batch' by tests/test_emacs.py,
;; with fresh projects and the scripted model; the tests of the module
;; share one codex-sessions daemon, as a user's editors do.
;; Results that pytest checks on its own are written with
;; `my-codex-test-result'.

;;; Code:

(require 'my-codex-test-helpers)

;;;; Starting, buffer names, streaming

(ert-deftest my-codex-test-start-names-and-streaming ()
  "Start sessions; buffers are named by the sidecar; text streams in piece by piece."
  (my-codex-test-in-project
    (let ((snapshots nil))
      (advice-add 'my-codex--insert-piece :after
                  (lambda (&rest _)
                    (push (with-current-buffer (current-buffer)
                            (how-many "tick" (point-min) (point-max)))
                          snapshots))
                  '((name . my-codex-test-snapshot)))
      (let* ((buf (let ((my-codex-pop-to-buffer-on-start t))
                    (my-codex-start-session nil "slow: 1.6")))
             (session (my-codex-test-session "main")))
        (should (buffer-live-p buf))
        (should (eq (current-buffer) buf))
        (should (equal (buffer-name buf) (plist-get session :bufferName)))
        (my-codex-test-wait-turns "main" 1)
        (advice-remove 'my-codex--insert-piece 'my-codex-test-snapshot)
        ;; The agent's text arrived in several pieces, and the buffer grew with them.
        (setq snapshots (nreverse snapshots))
        (should (>= (length (delete-dups (copy-sequence snapshots))) 3))
        (should (equal snapshots (sort (copy-sequence snapshots) #'<)))
        (should (= (car (last snapshots)) 8))
        ;; Once complete, the message is shown once, not twice, on lines of its
        ;; own: no status marker glued to it or cluttering the transcript.
        (my-codex-test-wait-text buf "^Codex:\n\\(tick \\)\\{8\\}\n")
        (should (= 1 (with-current-buffer buf (how-many "^Codex:$" (point-min) (point-max)))))
        (should-not (string-match-p "\\[\\(running\\|idle\\|waiting\\)\\]" (my-codex-test-text buf)))
        ;; The transcript is no edit of the user's: the buffer is not modified.
        (should-not (buffer-modified-p buf))
        (should (string-match-p "^> slow: 1.6$" (my-codex-test-text buf)))
        ;; The report follows the end of the turn.
        (my-codex-test-wait-text buf "^Report:\n  Session: main\n  Status: done")
        ;; Starting `main' again reuses it and its buffer.
        (should (eq (my-codex-start-session "main") buf))
        (should (equal (plist-get (my-codex-test-session "main") :id) (plist-get session :id)))
        ;; A named session gets its own buffer.
        (let ((review (my-codex-start-session "review" "say: reviewing")))
          (should-not (eq review buf))
          (my-codex-test-wait-turns "review" 1)
          (my-codex-test-wait-text review "^reviewing$")
          (my-codex-test-result 'review-buffer (buffer-name review))
          (my-codex-test-result 'review-buffer-name
                                (plist-get (my-codex-test-session "review") :bufferName)))
        ;; Interactively: completion over the project's names, `main' when none is typed.
        (let (offered default prompts)
          (cl-letf (((symbol-function 'completing-read)
                     (lambda (prompt collection &rest args)
                       (setq offered (all-completions "" collection)
                             default (nth 4 args))
                       (push prompt prompts)
                       ""))
                    ((symbol-function 'read-string)
                     (lambda (prompt &rest _) (push prompt prompts) "")))
            (let ((my-codex-pop-to-buffer-on-start t))
              (should (eq (call-interactively #'my-codex-start-session) buf))))
          (should (equal (sort offered #'string<) '("main" "review")))
          (should (equal default "main"))
          (should (equal (reverse prompts)
                         '("Start Codex session (default main): " "First prompt (optional): ")))
          (should (eq (current-buffer) buf)))
        (my-codex-test-result 'snapshots snapshots)
        (my-codex-test-result 'main-buffer (buffer-name buf))
        (my-codex-test-result 'main-buffer-name (plist-get session :bufferName))
        (my-codex-test-result 'root (plist-get (plist-get session :project) :root))
        (my-codex-test-result 'project-hash (plist-get (plist-get session :project) :hash))))))

;;;; The buffer: sending, commands, file changes, folding

(ert-deftest my-codex-test-buffer-prompt-commands-and-files ()
  "Send from the prompt with C-c C-c and RET; commands, exit codes, folds, file buttons."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main")))
      (with-current-buffer buf
        (my-codex-test-wait-status "main" "idle")
        ;; Typing in the transcript is refused; at the prompt it is fine.
        (goto-char (point-min))
        (should-error (insert "x") :type 'text-read-only)
        (goto-char (point-max))
        (insert "say: sent with C-c C-c")
        (should (eq (key-binding (kbd "C-c C-c")) #'my-codex-send))
        (call-interactively #'my-codex-send)
        (should (string-empty-p (my-codex--prompt-text)))
        (my-codex-test-wait-turns "main" 1)
        (my-codex-test-wait-text buf "^sent with C-c C-c$")
        (goto-char (point-max))
        (insert "run: seq 1 20 > numbers.txt && seq 1 20")
        (should (eq (key-binding (kbd "RET")) #'my-codex-return))
        (call-interactively #'my-codex-return)
        (my-codex-test-wait-turns "main" 2)
        (my-codex-test-wait-text buf "Files changed:")
        (let ((text (my-codex-test-text buf)))
          (should (string-match-p "^\\$ .*seq 1 20 > numbers.txt && seq 1 20  \\[exit 0\\]  (2[0-9] lines, TAB folds)$" text))
          (should (string-match-p "^  add +numbers.txt$" text)))
        ;; Long output starts folded; TAB unfolds it and folds it again.
        (goto-char (point-min))
        (re-search-forward "^\\$ .*seq 1 20")
        (let ((output (next-single-property-change (point) 'my-codex-output)))
          (should output)
          (should (eq (get-text-property output 'invisible) t))
          (should (eq (key-binding (kbd "TAB")) #'my-codex-toggle-output))
          (my-codex-toggle-output)
          (should-not (get-text-property output 'invisible))
          (my-codex-toggle-output)
          (should (get-text-property output 'invisible)))
        ;; A failing command shows its exit code.
        (my-codex-send "run: ls no-such-file")
        (my-codex-test-wait-turns "main" 3)
        (my-codex-test-wait-text buf "ls no-such-file  \\[exit [1-9]")
        ;; A command printing NUL bytes: Emacs's JSON parser refuses U+0000, so the
        ;; sidecar shows each as ␀ and nothing of the turn is lost.
        (my-codex-send "run: sleep 0.3; printf 'nul\\000here\\n'")
        (my-codex-test-wait-turns "main" 4)
        (my-codex-test-wait-text buf "nul␀here")
        ;; Each changed file is a button that opens it.
        (goto-char (point-min))
        (re-search-forward "^  add +")
        (should (button-at (point)))
        (push-button (point))
        (my-codex-test-result 'opened (buffer-file-name (current-buffer)))
        (should (equal (buffer-file-name (current-buffer))
                       (expand-file-name "numbers.txt" (file-truename my-codex-test-project)))))
      ;; A failing model shows as an error.
      (with-current-buffer buf
        (my-codex-send "fail"))
      (my-codex-test-wait "the failed turn"
                          (lambda () (let ((s (my-codex-test-session "main")))
                                       (and (= (plist-get s :turns) 5)
                                            (not (member (plist-get s :status)
                                                         my-codex--active-statuses))))))
      (my-codex-test-wait-text buf "^Error: .+")
      (my-codex-test-wait-text buf "Status: failed")
      ;; The header line shows the status and the turns.
      (with-current-buffer buf
        (let ((header (my-codex-test-header)))
          (should (string-match-p "ultra/main +idle" header))
          (should (string-match-p "turns 5" header))
          ;; Status and report agree: the header says the turn failed.
          (should (string-match-p "last turn failed" header))))
      (my-codex-test-result 'numbers (with-temp-buffer
                                       (insert-file-contents
                                        (expand-file-name "numbers.txt" my-codex-test-project))
                                       (buffer-string))))))

;;;; Approvals

(ert-deftest my-codex-test-approval-round-trip ()
  "An approval request shows in the buffer; Accept runs the command, Decline does not."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "run-approved: touch approved.txt"))
          (my-codex-test-messages nil))
      (my-codex-test-wait-status "main" "waiting")
      (my-codex-test-wait-text buf "\\[Accept\\]")
      (let ((text (my-codex-test-text buf)))
        (should (string-match-p "Approval needed (command):\n  \\$ touch approved.txt\n  cwd: " text))
        (should (string-match-p "reason: Needs approval to run: touch approved.txt" text)))
      ;; Announced in the echo area (the buffer is not in view in batch) and the mode line.
      (my-codex-test-wait "announcement"
                          (lambda () (cl-some (lambda (m) (string-match-p "waits for approval: touch approved.txt" m))
                                              my-codex-test-messages)))
      (should (string-match-p "1 waiting" (my-codex-mode-line)))
      ;; The counts are in the global mode line, as a valid construct.
      (should (stringp (car global-mode-string)))
      (should (member '(:eval (my-codex-mode-line)) global-mode-string))
      (with-current-buffer buf
        (should (string-match-p "1 approval pending" (my-codex-test-header)))
        (should-not (file-exists-p (expand-file-name "approved.txt" my-codex-test-project)))
        ;; Press the Accept button in the buffer.
        (goto-char (point-min))
        (search-forward "[Accept]")
        (push-button (match-beginning 0)))
      (my-codex-test-wait-turns "main" 1)
      (should (file-exists-p (expand-file-name "approved.txt" my-codex-test-project)))
      (my-codex-test-wait-text buf "^  -> accept$")
      (my-codex-test-wait-text buf "^Approval r1: accept$")
      ;; The answer replaces the buttons, and the decision follows it.
      (should (string-match-p "^  -> accept\nApproval r1: accept$" (my-codex-test-text buf)))
      (should-not (string-match-p "\\[Accept\\]" (my-codex-test-text buf)))
      (should (string-match-p "touch approved.txt  \\[exit 0\\]" (my-codex-test-text buf)))
      ;; A second request, declined with the key.
      (with-current-buffer buf
        (my-codex-send "run-approved: touch declined.txt")
        (my-codex-test-wait-status "main" "waiting")
        (should (eq (key-binding (kbd "C-c C-d")) #'my-codex-decline))
        (call-interactively #'my-codex-decline))
      (my-codex-test-wait-turns "main" 2)
      (my-codex-test-wait-text buf "^Approval r2: decline$")
      (should-not (file-exists-p (expand-file-name "declined.txt" my-codex-test-project)))
      ;; A third, accepted for the rest of the session with C-c C-s.
      (with-current-buffer buf
        (my-codex-send "run-approved: touch for-session.txt")
        (my-codex-test-wait-status "main" "waiting")
        (should (eq (key-binding (kbd "C-c C-s")) #'my-codex-accept-for-session))
        (call-interactively #'my-codex-accept-for-session))
      (my-codex-test-wait-turns "main" 3)
      (my-codex-test-wait-text buf "^Approval r3: acceptForSession$")
      (should (file-exists-p (expand-file-name "for-session.txt" my-codex-test-project)))
      (should (equal (my-codex-mode-line) ""))
      (my-codex-test-result 'approved t))))

;;;; Kill and kill-all

(ert-deftest my-codex-test-kill-and-kill-all ()
  "Kill one session; kill-all asks once and stops the project's sessions only."
  (my-codex-test-in-project
    (dolist (name '("main" "review" "tests"))
      (my-codex-start-session name))
    (let ((default-directory my-codex-test-other-project))
      (my-codex-start-session "main"))
    (dolist (name '("main" "review" "tests"))
      (my-codex-test-wait-status name "idle"))
    (let ((review-buf (get-buffer (plist-get (my-codex-test-session "review") :bufferName)))
          (review-id (plist-get (my-codex-test-session "review") :id)))
      (my-codex-kill-session "review")
      (my-codex-test-wait "review stopped"
                          (lambda () (equal (plist-get (gethash review-id my-codex--sessions) :status)
                                            "stopped")))
      ;; Its buffer stays, saying so.
      (should (buffer-live-p review-buf))
      (with-current-buffer review-buf
        (should (string-match-p "stopped" (my-codex-test-header)))))
    ;; Kill-all of the project: asks once.
    (let ((asked 0))
      (cl-letf (((symbol-function 'yes-or-no-p) (lambda (&rest _) (cl-incf asked) t))
                ((symbol-function 'y-or-n-p) (lambda (&rest _) (cl-incf asked) t)))
        (call-interactively #'my-codex-kill-all-sessions))
      (should (= asked 1)))
    (let ((live (my-codex-test-mine (my-codex--list nil))))
      (my-codex-test-result 'after-kill-all
                            (mapcar (lambda (s) (list (plist-get (plist-get s :project) :name)
                                                      (plist-get s :name) (plist-get s :status)))
                                    live))
      ;; Only the other project's session still runs.
      (should (equal (mapcar (lambda (s) (plist-get (plist-get s :project) :name))
                             (seq-filter #'my-codex--live-p live))
                     '("other"))))
    ;; Declining the question kills nothing.
    (cl-letf (((symbol-function 'yes-or-no-p) (lambda (&rest _) nil)))
      (let ((current-prefix-arg '(4)))
        (call-interactively #'my-codex-kill-all-sessions)))
    (should (seq-filter #'my-codex--live-p (my-codex-test-mine (my-codex--list nil))))
    ;; With a prefix argument, every project.
    (cl-letf (((symbol-function 'yes-or-no-p) (lambda (&rest _) t)))
      (let ((current-prefix-arg '(4)))
        (call-interactively #'my-codex-kill-all-sessions)))
    (should-not (seq-filter #'my-codex--live-p (my-codex-test-mine (my-codex--list nil))))
    (my-codex-test-result 'killed-all t)))

;;;; Rename

(ert-deftest my-codex-test-rename-buffer-follows ()
  "Renaming a session renames its buffer to the sidecar's new bufferName."
  (my-codex-test-in-project
    (let* ((buf (my-codex-start-session "main" "say: before the rename"))
           (old-name (buffer-name buf)))
      (my-codex-test-wait-turns "main" 1)
      (with-current-buffer buf
        (cl-letf (((symbol-function 'read-string) (lambda (&rest _) "review")))
          (call-interactively #'my-codex-rename-session)))
      (let ((session (my-codex-test-session "review")))
        (should session)
        (should (buffer-live-p buf))
        (should (equal (buffer-name buf) (plist-get session :bufferName)))
        (should-not (get-buffer old-name))
        (should (string-match-p "ultra/review" (with-current-buffer buf
                                                 (my-codex-test-header))))
        ;; The renamed buffer still drives its session, history intact.
        (with-current-buffer buf
          (my-codex-send "say: after the rename"))
        (my-codex-test-wait-turns "review" 2)
        (my-codex-test-wait-text buf "^after the rename$")
        (should (string-match-p "^before the rename$" (my-codex-test-text buf)))
        (my-codex-test-result 'old-buffer old-name)
        (my-codex-test-result 'new-buffer (buffer-name buf))
        (my-codex-test-result 'new-buffer-name (plist-get session :bufferName))))))

;;;; The list buffer

(defun my-codex-test-list-names (buf)
  "Return the session names in the list buffer BUF, top to bottom."
  (with-current-buffer buf
    (let ((column (cl-position "Name" tabulated-list-format :key #'car :test #'equal)))
      (mapcar (lambda (entry) (aref (cadr entry) column)) tabulated-list-entries))))

(defvar my-codex-test-requests nil
  "Methods of the requests sent to the sidecar, most recent first.")

(defun my-codex-test-count-requests (conn method &rest _)
  "Record METHOD, sent on CONN, in `my-codex-test-requests'."
  (ignore conn)
  (push method my-codex-test-requests))

(ert-deftest my-codex-test-list-ordering-and-keys ()
  "The list shows the sidecar's headlines and order, follows notifications; its keys work."
  ;; This test kills a session's Codex: each session gets its own.
  (let ((my-codex-codex-process 'per-session))
    (my-codex-test-in-project
      (let ((list (my-codex-list-sessions)))
        (should (equal (my-codex-test-list-names list) nil))
        (my-codex-start-session "alpha" "say: alpha is done")
        (my-codex-test-wait-turns "alpha" 1)
        (my-codex-start-session "gamma")
        (my-codex-start-session "delta")
        (my-codex-test-wait-status "gamma" "idle")
        (my-codex-test-wait-status "delta" "idle")
        (setq my-codex-test-requests nil)
        (advice-add 'jsonrpc-async-request :before #'my-codex-test-count-requests)
        (my-codex-start-session "beta" "run-approved: touch beta.txt")
        (my-codex-send "slow: 30" (my-codex-test-session "delta"))
        (my-codex-test-wait-status "delta" "running")
        (signal-process (plist-get (my-codex-test-session "gamma") :pid) 'KILL)
        (my-codex-test-wait-status "gamma" "failed")
        (my-codex-test-wait-status "beta" "waiting")
        ;; The list buffer follows on its own, without `g'.
        (my-codex-test-wait "list order"
                            (lambda () (equal (my-codex-test-list-names list)
                                              '("beta" "gamma" "delta" "alpha"))))
        ;; ... from the notifications alone: no list request after a change.
        (advice-remove 'jsonrpc-async-request #'my-codex-test-count-requests)
        (should-not (memq 'codex/session/list my-codex-test-requests))
        (with-current-buffer list
          (let ((text (buffer-substring-no-properties (point-min) (point-max))))
            (my-codex-test-result 'list-text text)
            ;; The sidecar's headline: what a waiting session waits on, why one
            ;; failed, what a finished one reported.
            (should (string-match-p "^ *1 +beta +waiting .*waits: touch beta.txt" text))
            (should (string-match-p "^ *2 +gamma +failed .*Codex exited" text))
            (should (string-match-p "^ *3 +delta +running +[0-9]+s .*slow: 30" text))
            (should (string-match-p "^ *4 +alpha +idle .*done: alpha is done" text)))
          (my-codex-test-result 'list-header (my-codex-test-header))
          ;; a answers the line's approval.
          (goto-char (point-min))
          (should (search-forward-regexp "^ *[0-9]* +beta" nil t))
          (should (eq (key-binding (kbd "a")) #'my-codex-accept))
          (should (eq (key-binding (kbd "d")) #'my-codex-decline))
          (call-interactively #'my-codex-accept)
          (my-codex-test-wait-turns "beta" 1)
          (should (file-exists-p (expand-file-name "beta.txt" my-codex-test-project)))
          ;; c cancels the running turn of the line.
          (goto-char (point-min))
          (should (search-forward-regexp "^ *[0-9]* +delta" nil t))
          (should (eq (key-binding (kbd "c")) #'my-codex-list-cancel))
          (call-interactively #'my-codex-list-cancel)
          (my-codex-test-wait-status "delta" "idle")
          (should (equal (plist-get (plist-get (my-codex-test-session "delta") :lastTurn) :status)
                         "interrupted"))
          ;; R shows the report.
          (goto-char (point-min))
          (search-forward-regexp "^ *[0-9]* +alpha")
          ;; (a on a line that waits for nothing says so)
          (should (equal (my-codex-test-user-error #'call-interactively #'my-codex-accept)
                         "Codex ultra/alpha waits for no approval"))
          (call-interactively #'my-codex-list-report)
          (should (string-match-p "^Session: alpha\nStatus: done"
                                  (with-current-buffer "*my-codex report*" (buffer-string))))
          ;; r renames, k kills: a stopped session leaves the list...
          (goto-char (point-min))
          (search-forward-regexp "^ *[0-9]* +alpha")
          (cl-letf (((symbol-function 'read-string) (lambda (&rest _) "omega")))
            (call-interactively #'my-codex-list-rename))
          (my-codex-test-wait "omega listed"
                              (lambda () (member "omega" (my-codex-test-list-names list))))
          (goto-char (point-min))
          (search-forward-regexp "^ *[0-9]* +omega")
          (call-interactively #'my-codex-list-kill)
          (my-codex-test-wait "omega gone"
                              (lambda () (not (member "omega" (my-codex-test-list-names list)))))
          ;; ... until t shows stopped sessions, and D forgets one for good.
          (should (eq (key-binding (kbd "t")) #'my-codex-list-toggle-stopped))
          (call-interactively #'my-codex-list-toggle-stopped)
          (should (member "omega" (my-codex-test-list-names list)))
          (goto-char (point-min))
          (search-forward-regexp "^ *[0-9]* +omega")
          (should (eq (key-binding (kbd "D")) #'my-codex-forget-session))
          (let ((asked nil))
            (cl-letf (((symbol-function 'yes-or-no-p) (lambda (prompt) (setq asked prompt) t)))
              (call-interactively #'my-codex-forget-session))
            (should (string-match-p "ultra/omega .*for good" asked)))
          (my-codex-test-wait "omega forgotten"
                              (lambda () (not (member "omega" (my-codex-test-list-names list)))))
          (should-error (my-codex--get "omega") :type 'user-error)
          (call-interactively #'my-codex-list-toggle-stopped)
          ;; g refreshes from the sidecar.
          (should (eq (key-binding (kbd "g")) #'revert-buffer))
          (setq tabulated-list-entries nil)
          (call-interactively #'revert-buffer)
          (let ((names (my-codex-test-list-names list)))
            (should (equal (car names) "gamma"))
            (should (equal (sort names #'string<) '("beta" "delta" "gamma"))))
          ;; RET visits.
          (goto-char (point-min))
          (search-forward-regexp "^ *[0-9]* +beta")
          (call-interactively #'my-codex-list-visit)
          (should (equal (buffer-name) (plist-get (my-codex-test-session "beta") :bufferName))))
        ;; A prefix argument lists every project.
        (let ((default-directory my-codex-test-other-project))
          (my-codex-start-session "main"))
        (let ((all (let ((current-prefix-arg '(4)))
                     (call-interactively #'my-codex-list-sessions))))
          (my-codex-test-wait "other/main listed"
                              (lambda () (string-match-p "^ *[0-9]* +other +main"
                                                         (with-current-buffer all (buffer-string))))))
        (let ((mine (my-codex-list-sessions)))
          (should-not (member "main" (my-codex-test-list-names mine)))
          ;; K kills all of the line's project, asking once.
          (with-current-buffer mine
            (goto-char (point-min))
            (search-forward-regexp "^ *[0-9]* +beta")
            (let ((asked 0))
              (cl-letf (((symbol-function 'yes-or-no-p) (lambda (&rest _) (cl-incf asked) t)))
                (call-interactively #'my-codex-list-kill-all))
              (should (= asked 1))))
          (should-not (seq-filter #'my-codex--live-p (my-codex--list (my-codex--project)))))))))

;;;; Work trees of their own: options, diff, merge, discard

(defun my-codex-test-git (&rest args)
  "Run git with ARGS in the test project; return its output lines."
  (let ((default-directory my-codex-test-project))
    (apply #'process-lines "git" args)))

(defun my-codex-test-list-line (buf name)
  "Move point to the line of session NAME in the list buffer BUF; return the line."
  (with-current-buffer buf
    (goto-char (point-min))
    (unless (re-search-forward (format "^ *[0-9]* +%s " (regexp-quote name)) nil t)
      (ert-fail (list 'no-list-line name (buffer-string))))
    (beginning-of-line)
    (buffer-substring-no-properties (point) (line-end-position))))

(ert-deftest my-codex-test-worktrees-diff-merge-discard ()
  "C-u C-u asks for a work tree; diff shows each; merge stages and offers a commit; discard asks."
  (my-codex-test-in-project
    (with-temp-file (expand-file-name "notes.txt" my-codex-test-project) (insert "uncommitted\n"))
    (let ((my-codex-test-messages nil) asked)
      ;; C-u C-u: the options, asked in turn; empty model and effort: Codex's
      ;; defaults; empty notes: `my-codex-notes' (off).
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (prompt _collection &rest _)
                   (push prompt asked)
                   (cond ((string-prefix-p "Start Codex session with options" prompt) "left")
                         ((string-prefix-p "Work in" prompt) "worktree")
                         ((string-prefix-p "Role" prompt) "worker")
                         (t ""))))
                ((symbol-function 'read-string)
                 (lambda (prompt &rest _)
                   (push prompt asked)
                   (if (string-prefix-p "First prompt" prompt) "run: echo left > shared.txt" ""))))
        (let ((current-prefix-arg '(16)))
          (call-interactively #'my-codex-start-session)))
      (should (equal (mapcar (lambda (p) (car (split-string p "[ (]"))) (reverse asked))
                     '("Start" "Work" "Role" "Write" "Model" "Reasoning" "Notes" "First")))
      ;; The sidecar's warning: the work tree does not get the uncommitted file.
      (should (cl-some (lambda (m) (string-match-p "ultra/left started; .*notes.txt" m))
                       my-codex-test-messages)))
    (my-codex-start-session "right" "run: echo right > shared.txt" nil '(:isolation "worktree"))
    (my-codex-test-wait-turns "left" 1)
    (my-codex-test-wait-turns "right" 1)
    (let* ((left (my-codex-test-session "left"))
           (tree (plist-get (plist-get left :worktree) :path))
           (list (my-codex-list-sessions)))
      (should (equal (plist-get (plist-get left :worktree) :branch) "codex/left"))
      (should (eq (plist-get left :notes) :json-false))
      (should (file-exists-p (expand-file-name "shared.txt" tree)))
      (should-not (file-exists-p (expand-file-name "shared.txt" my-codex-test-project)))
      (my-codex-test-result 'left-tree tree)
      (with-current-buffer (my-codex--buffer-of (plist-get left :id))
        (should (string-match-p "tree codex/left" (my-codex-test-header))))
      ;; The list says whose work is not merged yet.
      (my-codex-test-wait "both unmerged"
                          (lambda () (and (string-match-p " unmerged " (my-codex-test-list-line list "left"))
                                          (string-match-p " unmerged " (my-codex-test-list-line list "right")))))
      ;; = on a line shows its diff: files as buttons, the other session's change named.
      (my-codex-test-list-line list "left")
      (should (eq (key-binding (kbd "=")) #'my-codex-diff))
      (let ((diff (with-current-buffer list (call-interactively #'my-codex-diff))))
        (with-current-buffer diff
          (should (derived-mode-p 'diff-mode))
          (let ((text (my-codex-test-text diff)))
            (my-codex-test-result 'diff-text text)
            (should (string-match-p "^  added +shared.txt  \\+1 -0$" text))
            (should (string-match-p "^  ! shared.txt was changed by ultra/right too$" text))
            (should (string-match-p "^\\+left$" text)))
          (goto-char (point-min))
          (re-search-forward "^  added +")
          (push-button (point))
          (should (equal (buffer-file-name) (expand-file-name "shared.txt" tree)))
          (kill-buffer))
        ;; From the diff, C-c C-m merges: staged, not committed; a commit buffer
        ;; offers the suggested message.
        (with-current-buffer diff
          (should (eq (key-binding (kbd "C-c C-m")) #'my-codex-merge-session))
          (call-interactively #'my-codex-merge-session)))
      (should (equal (my-codex-test-git "diff" "--cached" "--name-only") '("shared.txt")))
      (should (= 1 (length (my-codex-test-git "log" "--oneline"))))
      (let ((commit (get-buffer "*codex commit: ultra/left*")))
        (should commit)
        (with-current-buffer commit
          (should (derived-mode-p 'log-edit-mode))
          (should (string-match-p "^codex-sessions: left$" (buffer-string)))
          (should (equal (log-edit-files) '("shared.txt")))
          ;; C-c C-d there shows the session's diff again.
          (kill-buffer "*codex diff: ultra/left*")
          (call-interactively #'log-edit-show-diff)
          (should (eq (current-buffer) commit))
          (should (get-buffer-window "*codex diff: ultra/left*"))
          (should (string-match-p "^\\+left$" (my-codex-test-text "*codex diff: ultra/left*")))
          (let ((my-codex-test-messages nil))
            (call-interactively #'log-edit-done)
            (my-codex-test-wait "committed"
                                (lambda () (cl-some (lambda (m) (string-match-p "^Committed in " m))
                                                    my-codex-test-messages))))))
      (should (= 2 (length (my-codex-test-git "log" "--oneline"))))
      (my-codex-test-wait "left merged" (lambda () (string-match-p " merged " (my-codex-test-list-line list "left"))))
      ;; The second merge is refused, naming the file; C-u asked for the strategy.
      (my-codex-test-list-line list "right")
      (let (asked)
        (cl-letf (((symbol-function 'completing-read)
                   (lambda (prompt &rest _) (setq asked prompt) "commit")))
          (let* ((current-prefix-arg '(4))
                 (message (with-current-buffer list
                            (my-codex-test-user-error #'call-interactively #'my-codex-merge-session))))
            (my-codex-test-result 'refused message)
            (should (string-match-p "shared.txt" message))))
        (should (string-prefix-p "Merge strategy" asked)))
      (should (equal (with-temp-buffer
                       (insert-file-contents (expand-file-name "shared.txt" my-codex-test-project))
                       (buffer-string))
                     "left\n"))
      ;; A stopped session with a work tree stays listed until it is discarded.
      (my-codex-kill-session "right")
      (my-codex-test-wait-status "right" "stopped")
      (my-codex-test-wait "right listed, stopped"
                          (lambda () (string-match-p "stopped .* unmerged " (my-codex-test-list-line list "right"))))
      (my-codex-test-list-line list "right")
      (should (eq (with-current-buffer list (key-binding (kbd "X"))) #'my-codex-discard-session))
      (let (asked)
        (cl-letf (((symbol-function 'yes-or-no-p) (lambda (prompt) (setq asked prompt) nil)))
          (with-current-buffer list (call-interactively #'my-codex-discard-session)))
        (should (string-match-p "Discard the work tree .* and the branch codex/right of ultra/right, and its changes that are not merged\\? " asked))
        (should (plist-get (my-codex-test-session "right") :worktree))
        (cl-letf (((symbol-function 'yes-or-no-p) (lambda (_) t)))
          (with-current-buffer list (call-interactively #'my-codex-discard-session))))
      (my-codex-test-wait "right no longer listed"
                          (lambda () (not (member "right" (my-codex-test-list-names list)))))
      (my-codex-discard-session (my-codex-test-session "left"))
      (should-not (plist-get (my-codex-test-session "left") :worktree)))))

(ert-deftest my-codex-test-overlaps-and-scopes ()
  "Overlaps are announced and marked in the list; scopes warn at start; an explorer is read-only."
  (my-codex-test-in-project
    (let ((my-codex-test-messages nil)
          (list (my-codex-list-sessions)))
      (my-codex-start-session "alpha" "run: echo a >> same.txt")
      (my-codex-test-wait-turns "alpha" 1)
      (let ((beta (my-codex-start-session "beta" "run: echo b >> same.txt")))
        (my-codex-test-wait-turns "beta" 1)
        ;; Announced in the echo area, as approvals are.
        (my-codex-test-wait "the overlap announced"
                            (lambda () (cl-some (lambda (m) (string-match-p "\\`Codex overlap: ultra/alpha and ultra/beta changed same.txt" m))
                                                my-codex-test-messages)))
        ;; In the transcript, the header and the list of both.
        (my-codex-test-wait-text beta "^Warning: overlap: same.txt was also changed by alpha$")
        (with-current-buffer beta
          (should (string-match-p "1 overlap" (my-codex-test-header))))
        (my-codex-test-wait "both marked"
                            (lambda () (and (string-match-p "^ *[0-9]+ +alpha +! +idle"
                                                            (my-codex-test-list-line list "alpha"))
                                            (string-match-p "^ *[0-9]+ +beta +! +idle"
                                                            (my-codex-test-list-line list "beta"))))))
      ;; Write scopes that meet warn at start; a write outside one is flagged.
      (setq my-codex-test-messages nil)
      (my-codex-start-session "parser" nil nil '(:writeScope ("src/parser/**")))
      (my-codex-start-session "lexer" "run: echo hi > README.md" nil '(:writeScope ("src/**")))
      (should (cl-some (lambda (m) (string-match-p "ultra/lexer: write scope src/\\*\\* meets parser's src/parser/\\*\\*" m))
                       my-codex-test-messages))
      (my-codex-test-wait "out of scope announced"
                          (lambda () (member "Codex ultra/lexer wrote README.md, outside its write scope"
                                             my-codex-test-messages)))
      ;; An explorer works in Codex's read-only sandbox, and the header says its role.
      (let ((look (my-codex-start-session "look" nil nil '(:role "explorer"))))
        (should (equal (plist-get (my-codex-test-session "look") :sandbox) "read-only"))
        (with-current-buffer look
          (should (string-match-p "ultra/look .* explorer" (my-codex-test-header))))))))

;;;; Codex's threads: fork, review, steer, adopt, models

(ert-deftest my-codex-test-fork-from-here ()
  "C-c C-f on a turn continues from it in a new session; at the prompt, from the last."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "say: one")))
      (my-codex-test-wait-turns "main" 1)
      (my-codex-send "say: two" "main")
      (my-codex-test-wait-turns "main" 2)
      (my-codex-send "say: three" "main")
      (my-codex-test-wait-turns "main" 3)
      (my-codex-test-wait-text buf "^three$")
      (with-current-buffer buf
        ;; Each turn's text knows its number, the prompt and the answer alike.
        (dolist (turn '(("say: one" . 1) ("one" . 1) ("two" . 2) ("say: three" . 3)))
          (goto-char (point-min))
          (re-search-forward (format "^\\(> \\)?%s$" (car turn)))
          (should (equal (get-text-property (match-beginning 0) 'my-codex-turn) (cdr turn))))
        (goto-char (point-min))
        (re-search-forward "^one$")
        (should (eq (key-binding (kbd "C-c C-f")) #'my-codex-fork-here))
        (let (asked)
          (cl-letf (((symbol-function 'read-string) (lambda (prompt &rest _) (setq asked prompt) "early")))
            (call-interactively #'my-codex-fork-here))
          (should (equal asked "Continue ultra/main from turn 1 in a new session named: "))))
      (let ((early (my-codex--buffer-of (plist-get (my-codex-test-session "early") :id))))
        (should (eq (window-buffer (selected-window)) early))
        (my-codex-test-wait-status "early" "idle")
        (my-codex-test-wait-text early "^\\[Forked from main after turn 1 of 3\\]$")
        (my-codex-send "say: four" "early")
        (my-codex-test-wait-turns "early" 2)
        (my-codex-test-wait-text early "^four$")
        (with-current-buffer early
          ;; The fork's own turns go on from its origin's number.
          (goto-char (point-min))
          (re-search-forward "^four$")
          (should (equal (get-text-property (point) 'my-codex-turn) 2))
          ;; Its origin line visits the turn it came from.
          (goto-char (point-min))
          (search-forward "[Forked from")
          (push-button (point))
          (should (eq (current-buffer) buf))
          (should (looking-at "\n?> say: one$"))))
      ;; At the prompt: every turn.
      (with-current-buffer buf
        (goto-char (point-max))
        (cl-letf (((symbol-function 'read-string) (lambda (&rest _) "whole")))
          (call-interactively #'my-codex-fork-here)))
      (my-codex-test-wait-status "whole" "idle")
      (my-codex-send "say: five" "whole")
      (my-codex-test-wait-turns "whole" 4)
      ;; From anywhere, C-c x F; with C-u it asks for the turn.
      (set-buffer (my-codex-test-home))
      (should (eq (lookup-key my-codex-command-map (kbd "F")) #'my-codex-fork-session))
      (let (asked)
        (cl-letf (((symbol-function 'completing-read) (lambda (&rest _) "main"))
                  ((symbol-function 'read-number) (lambda (prompt &rest _) (push prompt asked) 2))
                  ((symbol-function 'read-string) (lambda (prompt &rest _) (push prompt asked) "mid")))
          (let ((current-prefix-arg '(4)))
            (call-interactively #'my-codex-fork-session)))
        (should (equal (reverse asked) '("Fork ultra/main after turn (1-3): "
                                         "Continue ultra/main from turn 2 in a new session named: "))))
      (my-codex-test-wait-text (my-codex--buffer-of (plist-get (my-codex-test-session "mid") :id))
                               "^\\[Forked from main after turn 2 of 3\\]$")
      ;; The original is untouched; a fork needs a name of its own.
      (should (= (plist-get (my-codex-test-session "main") :turns) 3))
      (with-current-buffer buf
        (goto-char (point-min))
        (re-search-forward "^two$")
        (cl-letf (((symbol-function 'read-string) (lambda (&rest _) "  ")))
          (should (string-match-p "needs a name"
                                  (my-codex-test-user-error #'call-interactively #'my-codex-fork-here))))))))

(ert-deftest my-codex-test-steer-a-running-turn ()
  "RET while a turn runs offers to add the prompt to it; no keeps the prompt."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "slow: 20")))
      (my-codex-test-wait-text buf "tick")
      (with-current-buffer buf
        (goto-char (point-max))
        (insert "say: steered")
        (let (asked)
          (cl-letf (((symbol-function 'y-or-n-p) (lambda (prompt) (setq asked prompt) nil)))
            (should (string-match-p "Not sent: Codex ultra/main is still running its turn (C-c C-k cancels it)"
                                    (my-codex-test-user-error #'call-interactively #'my-codex-return))))
          (should (equal asked "Codex ultra/main is running a turn: add this to it? "))
          (should (equal (my-codex--prompt-text) "say: steered")))
        (cl-letf (((symbol-function 'y-or-n-p) (lambda (_) t)))
          (call-interactively #'my-codex-return))
        (should (equal (my-codex--prompt-text) "")))
      (my-codex-test-wait-text buf "^> say: steered  (added to the running turn)$")
      (my-codex-test-wait-turns "main" 1 40)
      (should (string-match-p "^Summary: steered$" (my-codex-session-report "main")))
      ;; Once the turn ended, sending is a new turn again, without a question.
      (cl-letf (((symbol-function 'y-or-n-p) (lambda (_) (ert-fail "asked"))))
        (my-codex-send "say: after" "main"))
      (my-codex-test-wait-turns "main" 2))))

(ert-deftest my-codex-test-review ()
  "A review of the uncommitted changes by default; C-u asks for a branch or a commit."
  (my-codex-test-in-project
    (with-temp-file (expand-file-name "README.md" my-codex-test-project) (insert "# changed by hand\n"))
    (should (eq (lookup-key my-codex-command-map (kbd "v")) #'my-codex-review))
    (let ((buf (call-interactively #'my-codex-review)))
      (should (eq (window-buffer (selected-window)) buf))
      (should (equal (buffer-name buf) (plist-get (my-codex-test-session "review") :bufferName)))
      (my-codex-test-wait-turns "review" 1)
      (my-codex-test-wait-text buf "^\\[Review of the uncommitted changes\\]$")
      (my-codex-test-wait-text buf "^  Status: done$")
      (with-current-buffer buf
        ;; The sidecar's note comes before any turn: nothing to fork there.
        (goto-char (point-min))
        (search-forward "[Review of")
        (should (string-match-p "No turn here"
                                (my-codex-test-user-error #'call-interactively #'my-codex-fork-here)))))
    (let (offered)
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt collection &rest _)
                   (setq offered (all-completions "" collection))
                   "main")))
        (let ((current-prefix-arg '(4)))
          (call-interactively #'my-codex-review)))
      (should (member "main" offered)))
    (let ((buf (my-codex--buffer-of (plist-get (my-codex-test-session "review-2") :id))))
      (my-codex-test-wait-turns "review-2" 1)
      (my-codex-test-wait-text buf "^\\[Review of the changes against main\\]$"))
    ;; Anything that is not a branch is taken for a commit.
    (cl-letf (((symbol-function 'completing-read) (lambda (&rest _) "abc1234")))
      (should (equal (my-codex--read-review-target) '(:commit "abc1234"))))
    (cl-letf (((symbol-function 'completing-read) (lambda (&rest _) "")))
      (should-error (my-codex--read-review-target) :type 'user-error))))

(ert-deftest my-codex-test-models-usage-and-limits ()
  "Model and effort by completion from Codex's models; the list and header show them and the tokens."
  (my-codex-test-in-project
    (let (models efforts annotation)
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (prompt collection &rest _)
                   (cond ((string-prefix-p "Start Codex session" prompt) "tuned")
                         ((string-prefix-p "Work in" prompt) "shared")
                         ((string-prefix-p "Role" prompt) "worker")
                         ((string-prefix-p "Model" prompt)
                          (setq models (all-completions "" collection)
                                annotation (alist-get 'annotation-function
                                                      (cdr (funcall collection "" nil 'metadata))))
                          "mock-model-b")
                         ((string-prefix-p "Reasoning effort" prompt)
                          (setq efforts (all-completions "" collection))
                          "high"))))
                ((symbol-function 'read-string)
                 (lambda (prompt &rest _) (if (string-prefix-p "First" prompt) "say: tuned" ""))))
        (should (eq (lookup-key my-codex-command-map (kbd "S")) #'my-codex-start-session-with-options))
        (call-interactively #'my-codex-start-session-with-options))
      ;; The models Codex offers, its default said so; efforts of the default model.
      (should models)
      (should (cl-some (lambda (m) (string-match-p "(default)" (or (funcall annotation m) ""))) models))
      (should (member "high" efforts))
      (my-codex-test-result 'models models))
    (my-codex-start-session "usual" "say: usual")
    (my-codex-test-wait-turns "tuned" 1)
    (my-codex-test-wait-turns "usual" 1)
    (let ((session (my-codex-test-session "tuned"))
          (list (my-codex-list-sessions)))
      (should (equal (plist-get session :model) "mock-model-b"))
      (should (equal (plist-get session :effort) "high"))
      (with-current-buffer (my-codex--buffer-of (plist-get session :id))
        (should (string-match-p "turns 1  mock-model-b high  tokens [0-9.]+k?/[0-9.]+k?" (my-codex-test-header))))
      ;; The list shows the models as they differ: the one chosen, Codex's default.
      (my-codex-test-wait "the list's model and tokens"
                          (lambda () (and (string-match-p "idle +[0-9]+s +mock-model-b high +[0-9.]+k?/[0-9.]+k? "
                                                          (my-codex-test-list-line list "tuned"))
                                          (string-match-p "idle +[0-9]+s +mock-model +[0-9.]+k?/[0-9.]+k? "
                                                          (my-codex-test-list-line list "usual")))))
      (with-current-buffer list
        (should (string-match-p " Model " (my-codex-test-header))))
      ;; One session left: the same model on every row, no column for it.
      (my-codex-kill-session "usual")
      (my-codex-test-wait "no Model column"
                          (lambda () (with-current-buffer list
                                       (not (string-match-p "Model" (my-codex-test-header))))))
      ;; Offline, Codex reports no limits: the header says nothing of them.
      (my-codex-test-wait "limits asked" (lambda () my-codex--limits-time))
      (with-current-buffer list
        (should-not (string-match-p "limits" (my-codex-test-header)))
        ;; With a snapshot as Codex sends it, the list header shows each window.
        (let ((my-codex--limits '(:primary (:usedPercent 42 :windowDurationMins 300 :resetsAt nil)
                                  :secondary (:usedPercent 7 :windowDurationMins 10080))))
          (should (string-match-p "Headline +limits used: 5h 42%, 7d 7%\\'" (my-codex-test-header))))))))

(ert-deftest my-codex-test-codex-tui ()
  "C-c x T: Codex's own terminal UI on the session in a term buffer; a turn typed there is the session's."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "say: hello from emacs")))
      (my-codex-test-wait-turns "main" 1)
      (should (eq (lookup-key my-codex-command-map (kbd "T")) #'my-codex-tui))
      (with-current-buffer buf
        (call-interactively #'my-codex-tui))
      (let* ((term (my-codex-test-wait "the TUI's buffer"
                                       (lambda () (get-buffer "*codex tui: ultra/main*")) 60))
             (proc (get-buffer-process term)))
        (should (eq (window-buffer (selected-window)) term))
        (with-current-buffer term
          (should (eq major-mode 'term-mode))
          (should (eq (current-local-map) term-raw-map)))  ; char mode: keys go to Codex
        ;; Codex's TUI shows the conversation so far.
        (my-codex-test-wait-text term "hello from emacs" 60)
        (process-send-string proc "say: typed in the tui")
        (sleep-for 0.6)                 ; typed text in one burst is taken as a paste
        (process-send-string proc "\r")
        ;; The turn typed there is the session's: its buffer here shows it.
        (my-codex-test-wait-text buf "^> say: typed in the tui  (typed in Codex's terminal UI)$" 60)
        (my-codex-test-wait-text buf "^typed in the tui$" 60)
        (my-codex-test-wait-turns "main" 2)
        ;; Asked again, the same TUI shows; leaving it closes its buffer.
        (switch-to-buffer buf)
        (my-codex-tui (my-codex-test-session "main"))
        (should (eq (window-buffer (selected-window)) term))
        (should (eq (get-buffer-process term) proc))
        (process-send-string proc "\C-c")
        (my-codex-test-wait "the TUI's buffer to close" (lambda () (not (buffer-live-p term))) 30)
        (should-not (eq (window-buffer (selected-window)) term))))))

(ert-deftest my-codex-test-adopt-a-codex-conversation ()
  "A conversation made in Codex itself is offered, adopted under a name, its history shown."
  (my-codex-test-in-project
    (should (eq (lookup-key my-codex-command-map (kbd "A")) #'my-codex-adopt-thread))
    (let (offered asked)
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt collection &rest _)
                   (setq offered (all-completions "" collection))
                   (car offered)))
                ((symbol-function 'read-string) (lambda (prompt &rest _) (setq asked prompt) "held")))
        (call-interactively #'my-codex-adopt-thread))
      (should (equal offered '("say: the password is swordfish")))
      (should (equal asked "Adopt \"say: the password is swordfish\" as session: ")))
    (let ((buf (my-codex--buffer-of (plist-get (my-codex-test-session "held") :id))))
      (my-codex-test-wait-status "held" "idle")
      (my-codex-test-wait-text buf "^> say: the password is swordfish\nCodex:\nthe password is swordfish$")
      (my-codex-send "say: recalled" "held")
      (my-codex-test-wait-turns "held" 2)
      (with-current-buffer buf
        ;; Its turns are numbered from Codex's history on.
        (goto-char (point-min))
        (re-search-forward "^recalled$")
        (should (equal (get-text-property (point) 'my-codex-turn) 2))))
    ;; Nothing else to adopt: said so.
    (should (string-match-p "Codex has no conversation in .* that is not a session already"
                            (my-codex-test-user-error #'call-interactively #'my-codex-adopt-thread)))))

;;;; Numbered jumps

(ert-deftest my-codex-test-numbered-jumps ()
  "C-c x 1 ... C-c x 0 jump to the project's sessions in list order; the list shows the numbers."
  (my-codex-test-in-project
    ;; The digits are new keys: every earlier key of the map is as it was.
    (dolist (binding '(("s" . my-codex-start-session) ("b" . my-codex-switch-session)
                       ("l" . my-codex-list-sessions) ("a" . my-codex-pending)
                       ("m" . my-codex-send) ("w" . my-codex-send-region) ("f" . my-codex-send-file)
                       ("c" . my-codex-cancel) ("k" . my-codex-kill-session)
                       ("K" . my-codex-kill-all-sessions) ("r" . my-codex-rename-session)
                       ("R" . my-codex-session-report) ("u" . my-codex-resume-session)
                       ("D" . my-codex-forget-session) ("e" . my-codex-show-events)
                       ("E" . my-codex-show-stderr)))
      (should (eq (lookup-key my-codex-command-map (kbd (car binding))) (cdr binding))))
    (dotimes (n 10)
      (should (eq (lookup-key my-codex-command-map (kbd (number-to-string n)))
                  (intern (format "my-codex-switch-to-session-%d" n)))))
    (dolist (name '("one" "two" "three"))
      (my-codex-start-session name)
      (my-codex-test-wait-status name "idle"))
    (my-codex-start-session "waits" "run-approved: touch jump.txt")
    (my-codex-test-wait-status "waits" "waiting")
    (let* ((list (my-codex-list-sessions))
           (numbered (mapcar (lambda (s) (plist-get s :name))
                             (my-codex--numbered (my-codex--root-key my-codex-test-project)))))
      ;; What waits on you is number 1.
      (should (equal (car numbered) "waits"))
      (should (equal (sort (copy-sequence numbered) #'string<) '("one" "three" "two" "waits")))
      (my-codex-test-wait "numbered lines"
                          (lambda () (equal (mapcar (lambda (e) (aref (cadr e) 0))
                                                    (buffer-local-value 'tabulated-list-entries list))
                                            '("1" "2" "3" "4"))))
      (should (equal (my-codex-test-list-names list) numbered))
      (set-buffer (my-codex-test-home))
      (should (eq (call-interactively (lookup-key my-codex-command-map (kbd "1")))
                  (my-codex--buffer-of (plist-get (my-codex-test-session "waits") :id))))
      (set-buffer (my-codex-test-home))
      (should (equal (buffer-name (call-interactively (lookup-key my-codex-command-map (kbd "3"))))
                     (plist-get (my-codex-test-session (nth 2 numbered)) :bufferName)))
      (set-buffer (my-codex-test-home))
      (should (string-match-p "No Codex session number 10 in .* (it has 4 numbered sessions)"
                              (my-codex-test-user-error #'call-interactively
                                                        (lookup-key my-codex-command-map (kbd "0")))))
      ;; A stopped session leaves the numbers, as it leaves the list.
      (my-codex-kill-session "waits")
      (my-codex-test-wait-status "waits" "stopped")
      (set-buffer (my-codex-test-home))
      (should (equal (buffer-name (call-interactively #'my-codex-switch-to-session-1))
                     (plist-get (my-codex-test-session (nth 1 numbered)) :bufferName))))))

;;;; Errors

(ert-deftest my-codex-test-errors-are-user-errors ()
  "Bad names and impossible requests give the sidecar's message as a `user-error'."
  (my-codex-test-in-project
    (let ((message (my-codex-test-user-error #'my-codex-start-session "bad name")))
      (my-codex-test-result 'bad-name message)
      (should (string-match-p "name" message))
      (should (string-match-p "bad name" message)))
    (my-codex-start-session "main")
    (my-codex-test-wait-status "main" "idle")
    (let ((message (my-codex-test-user-error #'my-codex-rename-session "no/slash" "main")))
      (my-codex-test-result 'bad-new-name message)
      (should (string-match-p "newName" message)))
    (let ((message (my-codex-test-user-error #'my-codex-cancel "main")))
      (my-codex-test-result 'nothing-to-cancel message)
      (should (string-match-p "nothing to cancel" message)))
    (let ((message (my-codex-test-user-error #'my-codex-switch-session "nobody")))
      (should (string-match-p "no session named 'nobody'" message)))
    (let ((message (my-codex-test-user-error #'my-codex-resume-session "main")))
      (should (string-match-p "nothing to resume" message)))
    (let ((message (my-codex-test-user-error #'my-codex-send "  ")))
      (should (string-match-p "Nothing to send" message)))
    ;; A missing sidecar program is a user-error too.
    (let ((my-codex-sidecar-command '("/nonexistent/codex-sessions" "serve"))
          (my-codex--connection nil))
      (should (string-match-p "Cannot find the sidecar"
                              (my-codex-test-user-error #'my-codex-list-sessions))))
    ;; And the sidecar is still fine.
    (should (my-codex-test-session "main"))
    (should (my-codex--list (my-codex--project)))))

;;;; Cancel, report, notification, mode line

(ert-deftest my-codex-test-cancel-report-and-notify ()
  "Cancel a running turn; report; a background session's finish is notified."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "slow: 30")))
      (my-codex-test-wait-status "main" "running")
      (my-codex-test-wait-text buf "tick")
      (should (string-match-p "1 running" (my-codex-mode-line)))
      (with-current-buffer buf
        (should (string-match-p "running +[0-9]+s" (my-codex-test-header)))
        (should (eq (key-binding (kbd "C-c C-k")) #'my-codex-cancel))
        (call-interactively #'my-codex-cancel))
      (my-codex-test-wait-status "main" "idle")
      (should (equal (plist-get (plist-get (my-codex-test-session "main") :lastTurn) :status)
                     "interrupted"))
      ;; What streamed before the cancel stays, on lines of its own.
      (my-codex-test-wait-text buf "^Report:")
      (should (string-match-p "^Codex:\n\\(tick \\)+\nReport:" (my-codex-test-text buf)))
      (my-codex-test-wait "notification" (lambda () my-codex-test-notified))
      (let ((text (my-codex-session-report "main")))
        (my-codex-test-result 'report text)
        (should (string-match-p "^Session: main\nStatus: " text)))
      (should (string-match-p "^Session: main" (cadr (car my-codex-test-notified))))
      ;; The default notifier shows the report's first lines in the echo area.
      (let ((my-codex-test-messages nil))
        (my-codex-notify-echo-area (my-codex-test-session "main") "Session: main\nStatus: done\nSummary: ok\n")
        (should (equal (car my-codex-test-messages)
                       "Codex ultra/main finished: Status: done; Summary: ok")))
      (should (equal (my-codex-mode-line) "")))))

;;;; Switching, restarting, rebuilding from the transcript

(ert-deftest my-codex-test-switch-rebuilds-after-restart ()
  "Sessions outlive Emacs: after a restart, switching rebuilds the buffer; send resumes."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "say: remember the lighthouse"))
          collection annotate thread)
      (my-codex-test-wait-turns "main" 1)
      (setq thread (plist-get (my-codex-test-session "main") :threadId))
      (my-codex-start-session "review")
      ;; Completion offers the project's sessions, with status and headline.
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt table &rest _)
                   (setq collection (all-completions "" table)
                         annotate (alist-get 'annotation-function
                                             (cdr (funcall table "" nil 'metadata))))
                   "main")))
        (should (eq (call-interactively #'my-codex-switch-session) buf)))
      (should (equal (sort (copy-sequence collection) #'string<) '("main" "review")))
      (should (string-match-p "idle +done: remember the lighthouse" (funcall annotate "main")))
      (my-codex-test-result 'before (my-codex-test-text buf))
      ;; "Restart Emacs": close the connection, forget everything, kill the buffers.
      (my-codex-shutdown)
      (should-not (my-codex--live-connection))
      (kill-buffer buf)
      (set-buffer (my-codex-test-home))
      (clrhash my-codex--sessions)
      (clrhash my-codex--buffers)
      (setq my-codex--sessions-loaded nil)
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt table &rest _)
                   (setq collection (all-completions "" table)) "main")))
        (setq buf (call-interactively #'my-codex-switch-session)))
      (should (my-codex--live-connection))
      (should (equal (buffer-name buf) (plist-get (my-codex-test-session "main") :bufferName)))
      ;; The session went on without Emacs: still live, same thread.
      (should (equal (my-codex-test-status "main") "idle"))
      (should (my-codex--live-p (my-codex-test-session "main")))
      (my-codex-test-wait-text buf "^Codex:\nremember the lighthouse$")
      (let ((text (my-codex-test-text buf)))
        (my-codex-test-result 'rebuilt text)
        (should (string-match-p "^> say: remember the lighthouse$" text))
        ;; Nothing was lost, and nothing says so.
        (should-not (string-match-p "no longer kept" text)))
      ;; A stopped session can be picked to send to, and is resumed first.
      (my-codex-kill-session "main")
      (my-codex-test-wait-status "main" "stopped")
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt table &rest _)
                   (setq collection (all-completions "" table)) "main"))
                ((symbol-function 'read-string) (lambda (&rest _) "say: back again")))
        (call-interactively #'my-codex-send))
      (should (member "main" collection))
      (my-codex-test-wait-turns "main" 2)
      (my-codex-test-wait-text buf "^back again$")
      (should (equal (plist-get (my-codex-test-session "main") :threadId) thread))
      ;; Kill, then resume explicitly.
      (my-codex-kill-session "main")
      (my-codex-test-wait "stopped" (lambda () (equal (plist-get (my-codex--get "main") :status)
                                                      "stopped")))
      (my-codex-resume-session "main")
      (my-codex-test-wait-status "main" "idle")
      (should (my-codex--live-p (my-codex-test-session "main"))))))

(ert-deftest my-codex-test-sidecar-crash-restarts ()
  "When the relay dies Emacs reconnects; when the daemon dies, sessions come back interrupted."
  (my-codex-test-in-project
    (let* ((buf (my-codex-start-session "main" "say: before the crash"))
           (old (my-codex--live-connection)))
      (my-codex-test-wait-turns "main" 1)
      (signal-process (process-id (jsonrpc--process old)) 'KILL)
      ;; While it is down, the buffer says so and nothing is counted.
      (my-codex-test-wait "the sidecar gone" (lambda () (not (my-codex--live-connection))))
      (with-current-buffer buf
        (should (string-match-p "not connected" (my-codex-test-header))))
      (should (equal (my-codex-mode-line) ""))
      (my-codex-test-wait "a new connection"
                          (lambda () (let ((conn (my-codex--live-connection)))
                                       (and conn (not (eq conn old))))))
      ;; Only the relay died: the session is still live.
      (my-codex-test-wait "the list again" (lambda () my-codex--sessions-loaded))
      (should (my-codex--live-p (my-codex-test-session "main")))
      (with-current-buffer buf
        (my-codex-send "say: after the crash"))
      (my-codex-test-wait-turns "main" 2)
      (my-codex-test-wait-text buf "^after the crash$")
      ;; Now the daemon itself dies.
      (let* ((conn (my-codex--live-connection))
             (daemon (my-codex-test-wait "the daemon's pid"
                                         (lambda () (plist-get (my-codex--daemon conn) :pid))))
             (codex (plist-get (my-codex-test-session "main") :pid)))
        (signal-process daemon 'KILL)
        (my-codex-test-wait "a connection to a new daemon"
                            (lambda () (let ((new (my-codex--live-connection)))
                                         (and new (not (eq new conn))
                                              (listp (my-codex--daemon new))
                                              (not (equal (plist-get (my-codex--daemon new) :pid)
                                                          daemon))))))
        (my-codex-test-wait-status "main" "interrupted")
        (my-codex-test-wait "its Codex gone" (lambda () (not (process-attributes codex))) 5))
      (with-current-buffer buf
        (my-codex-send "say: after the daemon"))
      (my-codex-test-wait-turns "main" 3)
      (my-codex-test-wait-text buf "^after the daemon$")
      (let ((text (my-codex-test-text buf)))
        ;; Nothing shown twice after reconnecting.
        (should (= 1 (with-current-buffer buf
                       (how-many "^> say: before the crash$" (point-min) (point-max)))))
        (my-codex-test-result 'after-crash text)))))

;;;; Appending costs the same in a long transcript

(ert-deftest my-codex-test-append-cost-is-flat ()
  "Appending pieces to a long transcript costs about what it costs in a short one."
  (let ((my-codex--sessions (make-hash-table :test #'equal))
        (my-codex--buffers (make-hash-table :test #'equal)))
    (cl-flet ((timing (items)
                (with-temp-buffer
                  (my-codex-session-mode)
                  (my-codex--reset "fake")
                  (my-codex--insert-items
                   (vconcat (cl-loop for i from 1 to items
                                     collect (list :seq i :kind "command" :command "make"
                                                   :exitCode 0 :output "ok\nok\n"))))
                  (let ((start (float-time)))
                    (dotimes (m 20)
                      (dotimes (_ 100)
                        (my-codex--insert-items
                         (vector (list :kind "agentDelta" :itemId (format "m%d" m) :text "word "))))
                      (my-codex--insert-items
                       (vector (list :seq (+ items m 1) :kind "agent" :itemId (format "m%d" m)
                                     :text "done"))))
                    (- (float-time) start)))))
      (timing 10)
      (let ((short (min (timing 10) (timing 10)))
            (long (min (timing 20000) (timing 20000))))
        (my-codex-test-result 'append-seconds (list short long))
        (should (< long (+ (* 4 short) 0.05)))))))

(defvar my-codex-test-asked nil
  "The prompt and choice keys of the last exit question.")

(defun my-codex-test-query-exit (answer)
  "Run the questions Emacs asks before exiting, answering ANSWER; non-nil: it exits.
What was asked goes to `my-codex-test-asked'."
  (setq my-codex-test-asked nil)
  (cl-letf (((symbol-function 'read-multiple-choice)
             (lambda (prompt choices &rest _)
               (setq my-codex-test-asked (list prompt (mapcar #'car choices)))
               (assq answer choices))))
    (run-hook-with-args-until-failure 'kill-emacs-query-functions)))

(ert-deftest my-codex-test-exit-question-and-daemon-stop ()
  "Exiting says what goes on; a turn outlives Emacs; stopping the daemon stops every Codex."
  (my-codex-test-in-project
    (my-codex-start-session "main" "say: hello")
    (my-codex-test-wait-turns "main" 1)
    ;; Nothing under way: Emacs exits without a question.
    (should (my-codex-test-query-exit ?n))
    (should-not my-codex-test-asked)
    (my-codex-send "slow: 4" "main")
    (my-codex-test-wait-status "main" "running")
    ;; A turn under way: the question says what happens; n keeps Emacs.
    (should-not (my-codex-test-query-exit ?n))
    (should (string-match-p "1 Codex turn under way (ultra/main) will go on in the background"
                            (car my-codex-test-asked)))
    (should (equal (cadr my-codex-test-asked) '(?y ?k ?n)))
    (should (my-codex-test-query-exit ?y))
    (let* ((conn (my-codex--live-connection))
           (proc (jsonrpc--process conn))
           (codex-pid (plist-get (my-codex-test-session "main") :pid))
           (events (window-buffer (my-codex-show-events)))
           (stderr (window-buffer (my-codex-show-stderr))))
      (should (integerp codex-pid))
      (with-current-buffer events
        (should (string-match-p "codex/session/start" (buffer-string)))
        (should (string-match-p "codex/session/output" (buffer-string))))
      (should (eq stderr (jsonrpc-stderr-buffer conn)))
      ;; What `kill-emacs' runs: the connection closes politely...
      (should (memq #'my-codex--kill-emacs kill-emacs-hook))
      (run-hooks 'kill-emacs-hook)
      (should-not (process-live-p proc))
      (should (eql (process-exit-status proc) 0))
      (should-not (my-codex--live-connection))
      ;; ... and the turn goes on: a new connection sees it run, then finish.
      (clrhash my-codex--sessions)
      (setq my-codex--sessions-loaded nil)
      (my-codex--load-sessions)
      (should (equal (my-codex-test-status "main") "running"))
      (should (process-attributes codex-pid))
      (my-codex-test-wait-turns "main" 2)
      ;; k stops the sessions under way, then lets Emacs exit.
      (my-codex-send "slow: 30" "main")
      (my-codex-test-wait-status "main" "running")
      (should (my-codex-test-query-exit ?k))
      (my-codex-test-wait-status "main" "stopped")
      (my-codex-resume-session "main" t)
      (my-codex-test-wait-status "main" "idle")
      (setq codex-pid (plist-get (my-codex-test-session "main") :pid))
      ;; Stopping the daemon stops every Codex and keeps every record.
      (my-codex-stop-daemon)
      (my-codex-test-wait "Codex gone" (lambda () (not (process-attributes codex-pid))) 10)
      (my-codex-test-result 'codex-pid codex-pid)
      (should (equal (plist-get (my-codex--get "main") :status) "interrupted")))))

(ert-deftest my-codex-test-undo-in-the-prompt ()
  "Undo in the prompt undoes the user's typing, not the transcript streaming in."
  (let ((my-codex--sessions (make-hash-table :test #'equal))
        (my-codex--buffers (make-hash-table :test #'equal)))
    (with-temp-buffer
      (my-codex-session-mode)
      (my-codex--reset "fake")
      (my-codex--insert-items (vector (list :seq 1 :kind "user" :text "first")))
      (goto-char (point-max))
      (insert "hello")
      (undo-boundary)
      (insert " world")
      (undo-boundary)
      ;; Output arrives while the user types.
      (my-codex--insert-items
       (vector (list :kind "agentDelta" :itemId "m1" :text "streaming ")
               (list :kind "agentDelta" :itemId "m1" :text "text")
               (list :seq 2 :kind "agent" :itemId "m1" :text "streaming text")
               (list :seq 3 :kind "command" :command "ls" :exitCode 0
                     :output (mapconcat #'number-to-string (number-sequence 1 20) "\n"))))
      (my-codex--insert-report "Session: fake\nStatus: done")
      (goto-char (point-min))
      (re-search-forward "^\\$ ls")
      (my-codex-toggle-output)
      (goto-char (point-max))
      (let ((transcript (buffer-substring-no-properties (point-min) my-codex--prompt-start)))
        (should (equal (my-codex--prompt-text) "hello world"))
        ;; C-/ three times in a row, as the command loop runs it, with output
        ;; streaming in between: each goes further back, never forth again.
        (my-codex-test-undo-command)
        (should (equal (my-codex--prompt-text) "hello"))
        (my-codex--insert-items
         (vector (list :kind "agentDelta" :itemId "m2" :text "more ")))
        (setq transcript (buffer-substring-no-properties (point-min) my-codex--prompt-start))
        (my-codex-test-undo-command)
        (should (equal (my-codex--prompt-text) ""))
        (my-codex--insert-items
         (vector (list :kind "agentDelta" :itemId "m2" :text "text")))
        (setq transcript (buffer-substring-no-properties (point-min) my-codex--prompt-start))
        (should-error (my-codex-test-undo-command) :type 'user-error)
        (should (equal (my-codex--prompt-text) ""))
        (should (equal (buffer-substring-no-properties (point-min) my-codex--prompt-start)
                       transcript))
        ;; Another command breaks the run: undo then redoes, as everywhere.
        (setq last-command 'forward-char)
        (my-codex-test-undo-command)
        (should (equal (my-codex--prompt-text) "hello"))))))

(defun my-codex-test-undo-command ()
  "Run `undo' as the command loop would after the previous command."
  (let ((this-command 'undo))
    (unwind-protect
        (call-interactively #'undo)
      (setq last-command this-command))))

(ert-deftest my-codex-test-items-in-order-once ()
  "Transcript items are shown once each, in seq order; a gap is refetched, not shown."
  (let ((my-codex--sessions (make-hash-table :test #'equal))
        (my-codex--buffers (make-hash-table :test #'equal))
        (my-codex--connection nil))
    (with-temp-buffer
      (my-codex-session-mode)
      (my-codex--reset "fake")
      (my-codex--insert-items (vector (list :seq 1 :kind "user" :text "one")
                                      (list :seq 2 :kind "agent" :text "two")))
      ;; Repeated items (a resync overlapping live output) are dropped.
      (my-codex--insert-items (vector (list :seq 2 :kind "agent" :text "two")
                                      (list :seq 3 :kind "error" :text "three")))
      ;; An item past a gap is not shown; the missing ones are fetched first.
      (my-codex--insert-items (vector (list :seq 5 :kind "agent" :text "five")))
      (should (= my-codex--last-seq 3))
      ;; What the transcript itself no longer holds is said so.
      (my-codex--insert-items (vector (list :seq 5 :kind "agent" :text "five")) t)
      (should (= my-codex--last-seq 5))
      (should (equal (buffer-substring-no-properties (point-min) my-codex--prompt-start)
                     (concat "\n> one\nCodex:\ntwo\nError: three\n"
                             "[1 earlier transcript item(s) no longer kept]\n"
                             "Codex:\nfive\n\n--- prompt (C-c C-c or RET sends) ---\n"))))))

(ert-deftest my-codex-test-configuration ()
  "The state folder and extra Codex arguments from the options reach the sidecar."
  (let* ((state (make-temp-file "my-codex-state" t))
         (my-codex-state-directory state)
         (my-codex-codex-extra-args '("-c" "model_reasoning_effort=low"))
         (options (my-codex--initialization-options)))
    (should (equal (plist-get options :stateDir) (expand-file-name state)))
    (should-not (plist-get options :codexCommand))
    (should (equal (append (plist-get options :codexArgs) nil)
                   '("-c" "model_reasoning_effort=low")))
    (my-codex-test-in-project
      (let ((buf (my-codex-start-session "main" "say: configured")))
        (my-codex-test-wait-turns "main" 1)
        (my-codex-test-wait-text buf "^configured$")
        (should (directory-files state nil "\\`[^.]"))
        (my-codex-test-result 'state-files (directory-files state nil "\\`[^.]"))
        (my-codex-test-result 'codex-command
                              (split-string (with-temp-buffer
                                              (call-process "ps" nil t nil "-o" "args=" "-p"
                                                            (number-to-string
                                                             (plist-get (my-codex-test-session "main") :pid)))
                                              (buffer-string))))
        ;; This state folder has a daemon of its own: stop it.
        (my-codex-stop-daemon)
        (my-codex-test-wait "its daemon gone"
                            (lambda () (not (file-exists-p (expand-file-name "daemon.sock" state)))) 20)))))

;;;; Names are handles on conversations

(ert-deftest my-codex-test-names-resume-and-fresh ()
  "Starting a used name resumes that conversation; with C-u, a fresh one under the name."
  (my-codex-test-in-project
    (let* ((buf (my-codex-start-session "docs" "say: first words"))
           (id (plist-get (my-codex-test-session "docs") :id)))
      (my-codex-test-wait-turns "docs" 1)
      (my-codex-kill-session "docs")
      (my-codex-test-wait-status "docs" "stopped")
      ;; Starting the name again resumes it: same session, same buffer, history kept.
      (let ((my-codex-test-messages nil))
        (cl-letf (((symbol-function 'completing-read) (lambda (&rest _) "docs"))
                  ((symbol-function 'read-string) (lambda (&rest _) "")))
          (should (eq (call-interactively #'my-codex-start-session) buf)))
        (should (member "Codex session ultra/docs resumed" my-codex-test-messages)))
      (should (equal (plist-get (my-codex-test-session "docs") :id) id))
      (my-codex-test-wait-status "docs" "idle")
      (should (string-match-p "^first words$" (my-codex-test-text buf)))
      ;; A fresh conversation under a live name is refused, clearly.
      (should (string-match-p "already running"
                              (my-codex-test-user-error #'my-codex-start-session "docs" nil t)))
      ;; Once stopped, C-u gives a fresh conversation; the earlier one is renamed
      ;; out of the way and its buffer follows it.
      (my-codex-kill-session "docs")
      (my-codex-test-wait-status "docs" "stopped")
      (let ((current-prefix-arg '(4))
            (my-codex-test-messages nil)
            prompts fresh-buf)
        (cl-letf (((symbol-function 'completing-read)
                   (lambda (prompt &rest _) (push prompt prompts) "docs"))
                  ((symbol-function 'read-string) (lambda (&rest _) "say: new words")))
          (setq fresh-buf (call-interactively #'my-codex-start-session)))
        (should (equal (car (last prompts)) "Start a fresh Codex session (default main): "))
        (should (cl-some (lambda (m) (string-match-p "ultra/docs started afresh; the earlier one is now docs~1" m))
                         my-codex-test-messages))
        (should-not (eq fresh-buf buf))
        (should (buffer-live-p buf))
        (let ((old (gethash id my-codex--sessions)))
          (should (equal (plist-get old :name) "docs~1"))
          (should (equal (buffer-name buf) (plist-get old :bufferName))))
        (should-not (equal (plist-get (my-codex-test-session "docs") :id) id))
        (should (equal (buffer-name fresh-buf)
                       (plist-get (my-codex-test-session "docs") :bufferName)))
        (my-codex-test-wait-turns "docs" 1)
        (my-codex-test-wait-text fresh-buf "^new words$")
        (should-not (string-match-p "first words" (my-codex-test-text fresh-buf)))
        (should (string-match-p "^first words$" (my-codex-test-text buf)))))))

;;;; What waits on the user, from anywhere

(defun my-codex-test-other-session (name)
  "Return the cached session NAME of the other project."
  (let ((root (my-codex--root-key my-codex-test-other-project)) found)
    (maphash (lambda (_ s)
               (when (and (equal (plist-get s :name) name)
                          (equal (plist-get (plist-get s :project) :root) root))
                 (setq found s)))
             my-codex--sessions)
    found))

(ert-deftest my-codex-test-pending-from-anywhere ()
  "One inbox of what waits on the user in every project; its keys; accept from anywhere."
  (my-codex-test-in-project
    (my-codex-start-session "main" "run-approved: touch one.txt")
    (let ((default-directory my-codex-test-other-project))
      (my-codex-start-session "main" "run-approved: touch two.txt"))
    (my-codex-start-session "side" "run-approved: touch three.txt")
    (my-codex-test-wait-status "main" "waiting")
    (my-codex-test-wait-status "side" "waiting")
    (my-codex-test-wait "other/main waiting"
                        (lambda () (equal (plist-get (my-codex-test-other-session "main") :status)
                                          "waiting")))
    (set-buffer (my-codex-test-home))
    (let ((inbox (my-codex-pending)))
      (with-current-buffer inbox
        (should (eq major-mode 'my-codex-pending-mode))
        (my-codex-test-wait "three requests" (lambda () (= (length tabulated-list-entries) 3)))
        (my-codex-test-wait "drawn" (lambda () (string-match-p "touch three.txt" (buffer-string))))
        (let ((text (buffer-substring-no-properties (point-min) (point-max))))
          (my-codex-test-result 'inbox text)
          (should (string-match-p "ultra +main +command +touch one.txt" text))
          (should (string-match-p "other +main +command +touch two.txt" text))
          (should (string-match-p "ultra +side +command +touch three.txt" text)))
        ;; a accepts the request of the line, d declines.
        (goto-char (point-min))
        (search-forward "touch two.txt")
        (should (eq (key-binding (kbd "a")) #'my-codex-accept))
        (call-interactively #'my-codex-accept)
        (my-codex-test-wait "other/main done"
                            (lambda () (let ((s (my-codex-test-other-session "main")))
                                         (and (equal (plist-get s :status) "idle")
                                              (= (plist-get s :turns) 1)))))
        (should (file-exists-p (expand-file-name "two.txt" my-codex-test-other-project)))
        (my-codex-test-wait "two requests" (lambda () (= (length tabulated-list-entries) 2)))
        (goto-char (point-min))
        (search-forward "touch three.txt")
        (should (eq (key-binding (kbd "d")) #'my-codex-decline))
        (call-interactively #'my-codex-decline)
        (my-codex-test-wait-turns "side" 1)
        (should-not (file-exists-p (expand-file-name "three.txt" my-codex-test-project)))
        (my-codex-test-wait "one request" (lambda () (= (length tabulated-list-entries) 1)))))
    ;; From a buffer that is no session's, accept asks which request.
    (set-buffer (my-codex-test-home))
    (let (offered)
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt table &rest _)
                   (setq offered (all-completions "" table))
                   (car offered))))
        (call-interactively #'my-codex-accept))
      (should (equal (length offered) 1))
      (should (string-match-p "\\`ultra/main r[0-9]+: touch one.txt\\'" (car offered))))
    (my-codex-test-wait-turns "main" 1)
    (should (file-exists-p (expand-file-name "one.txt" my-codex-test-project)))
    (should (string-match-p "Nothing waits on you" (my-codex-test-user-error #'my-codex-accept)))
    ;; The mode-line lighter opens the inbox.
    (my-codex-send "run-approved: touch four.txt" "main")
    (my-codex-test-wait-status "main" "waiting")
    (let* ((lighter (my-codex-mode-line))
           (map (get-text-property (string-match "Codex" lighter) 'local-map lighter)))
      (should (string-match-p "Codex\\[1 waiting\\]" lighter))
      (should (eq (lookup-key map [mode-line mouse-1]) #'my-codex-pending)))))

;;;; Comint habits, context from other buffers

(ert-deftest my-codex-test-comint-habits-and-context ()
  "M-p and M-n recall prompts, C-c C-p and C-c C-n move between them; send region and file."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "say: one")))
      (my-codex-test-wait-turns "main" 1)
      (my-codex-send "say: two" "main")
      (my-codex-test-wait-turns "main" 2)
      (my-codex-test-wait-text buf "^two$")
      (with-current-buffer buf
        (should-not (buffer-modified-p))
        (goto-char (point-max))
        (insert "draft")
        (should (eq (key-binding (kbd "M-p")) #'my-codex-previous-input))
        (should (eq (key-binding (kbd "M-n")) #'my-codex-next-input))
        (setq last-command nil)
        (my-codex-test-command #'my-codex-previous-input)
        (should (equal (my-codex--prompt-text) "say: two"))
        (my-codex-test-command #'my-codex-previous-input)
        (should (equal (my-codex--prompt-text) "say: one"))
        (my-codex-test-command #'my-codex-previous-input)
        (should (equal (my-codex--prompt-text) "say: one"))
        (my-codex-test-command #'my-codex-next-input)
        (should (equal (my-codex--prompt-text) "say: two"))
        (my-codex-test-command #'my-codex-next-input)
        (should (equal (my-codex--prompt-text) "draft"))
        (should (eq (key-binding (kbd "C-c C-p")) #'my-codex-previous-prompt))
        (should (eq (key-binding (kbd "C-c C-n")) #'my-codex-next-prompt))
        (should (eq (key-binding (kbd "C-c C-w")) #'my-codex-rename-session))
        (call-interactively #'my-codex-previous-prompt)
        (should (looking-at "say: two$"))
        (call-interactively #'my-codex-previous-prompt)
        (should (looking-at "say: one$"))
        (call-interactively #'my-codex-next-prompt)
        (should (looking-at "say: two$"))
        (call-interactively #'my-codex-next-prompt)
        (should (= (point) (point-max)))
        (my-codex--set-prompt ""))
      ;; The region of a file, with its lines, goes to the prompt of a session.
      (let ((file (expand-file-name "notes.txt" my-codex-test-project)))
        (with-temp-file file (insert "alpha\nbeta\ngamma\ndelta\n"))
        (with-current-buffer (find-file-noselect file)
          (transient-mark-mode 1)
          (goto-char (point-min))
          (forward-line 1)
          (push-mark (point) t t)
          (forward-line 2)
          (cl-letf (((symbol-function 'completing-read) (lambda (&rest _) "main")))
            (call-interactively #'my-codex-send-region)))
        (with-current-buffer buf
          (should (equal (my-codex--prompt-text) "From `notes.txt` lines 2-3:\n```\nbeta\ngamma\n```")))
        ;; And a reference to the file.
        (with-current-buffer (find-file-noselect file)
          (cl-letf (((symbol-function 'completing-read) (lambda (&rest _) "main")))
            (call-interactively #'my-codex-send-file)))
        (with-current-buffer buf
          (should (string-suffix-p "```\n`notes.txt`" (my-codex--prompt-text)))
          (goto-char (point-max))
          (insert "say: noted")
          (call-interactively #'my-codex-send))
        (my-codex-test-wait-turns "main" 3)
        (my-codex-test-wait-text buf "^> From `notes.txt` lines 2-3:$"))
      ;; Cancel offers the sessions with a turn under way only, with a default.
      (my-codex-start-session "quiet")
      (my-codex-test-wait-status "quiet" "idle")
      (my-codex-send "slow: 30" "main")
      (my-codex-test-wait-status "main" "running")
      (set-buffer (my-codex-test-home))
      (let (offered default)
        (cl-letf (((symbol-function 'completing-read)
                   (lambda (_prompt table _pred _require _initial _history def &rest _)
                     (setq offered (all-completions "" table) default def)
                     def)))
          (call-interactively #'my-codex-cancel))
        (should (equal offered '("main")))
        (should (equal default "main")))
      (my-codex-test-wait-status "main" "idle"))))

;;;; What the sidecar says beside the sessions

(ert-deftest my-codex-test-header-retry-storage-and-messages ()
  "The header shows Codex's retries and storage failures; the sidecar's errors are warnings."
  (let ((my-codex--connection nil)
        (session (list :id "x" :name "main" :project (list :name "ultra") :status "running"
                       :turns 1 :pending [] :retry (list :attempt 2 :message "stream error: 500")
                       :storageError "saving to /s/db fails: disk full")))
    (let ((header (my-codex--header-text session)))
      (should (string-match-p "ultra/main +running +turns 1 +retrying (2): stream error: 500" header))
      (should (string-match-p "not saved: saving to /s/db fails: disk full" header))
      (should (string-match-p "not connected" header)))
    (should-not (string-match-p "retrying"
                                (my-codex--header-text (plist-put (copy-sequence session)
                                                                  :retry nil)))))
  (my-codex-handle-notification 'window/showMessage
                                (list :type 1 :message "codex-sessions: saving fails"))
  (should (string-match-p "codex-sessions: saving fails"
                          (with-current-buffer "*Warnings*" (buffer-string)))))

;;;; Nothing waits on a slow sidecar

(ert-deftest my-codex-test-slow-sidecar-never-blocks ()
  "With a sidecar that answers 2 s late, the list, its refresh and completion do not wait."
  (my-codex-test-in-project
    ;; A session made through a quick connection; the daemon keeps it.
    (my-codex-start-session "main" "say: ready")
    (my-codex-test-wait-turns "main" 1)
    (my-codex-shutdown)
    (clrhash my-codex--sessions)
    (setq my-codex--sessions-loaded nil)
    (let ((my-codex-sidecar-command (append (list (getenv "MY_CODEX_TEST_PYTHON")
                                                  (getenv "MY_CODEX_TEST_SLOW_SIDECAR") "2")
                                            my-codex-sidecar-command))
          (start (float-time)))
      ;; First use, nothing known yet: the list shows at once and fills in later.
      (let ((list (my-codex-list-sessions)))
        (should (< (- (float-time) start) 0.5))
        (should (string-match-p "connecting" (buffer-local-value 'mode-line-process list)))
        (my-codex-test-wait "the list filled in"
                            (lambda () (member "main" (my-codex-test-list-names list))) 30)
        ;; g shows what is known at once; the answer comes later.
        (with-current-buffer list
          (setq start (float-time))
          (revert-buffer)
          (should (< (- (float-time) start) 0.5))
          (should (member "main" (my-codex-test-list-names list)))))
      ;; Completion reads what Emacs knows.
      (set-buffer (my-codex-test-home))
      (let (offered asked)
        (setq start (float-time))
        (cl-letf (((symbol-function 'completing-read)
                   (lambda (_prompt table &rest _)
                     (setq offered (all-completions "" table))
                     (throw 'asked (float-time)))))
          (setq asked (catch 'asked (call-interactively #'my-codex-switch-session))))
        (should (< (- asked start) 0.5))
        (should (equal offered '("main"))))
      (setq start (float-time))
      (my-codex-list-sessions)
      (should (< (- (float-time) start) 0.5))
      (my-codex-pending)
      (should (< (- (float-time) start) 0.5))
      ;; A command whose result the user waits for says what it waits for.
      (set-buffer (my-codex-test-home))
      (let ((my-codex-test-messages nil))
        (my-codex-send "say: slowly" "main")
        (should (cl-some (lambda (m) (string-match-p "codex-sessions: waiting for send" m))
                         my-codex-test-messages))))))

;;;; Sessions belong to the user: other Emacsen

(ert-deftest my-codex-test-daemon-first-emacs ()
  "Start a long turn and an approval, then exit Emacs: both go on."
  (let ((my-codex-test-keep t))
    (my-codex-test-in-project
      (my-codex-start-session "long" "slow: 8")
      (my-codex-start-session "ask" "run-approved: touch asked.txt")
      (my-codex-test-wait-status "ask" "waiting")
      (my-codex-test-wait-status "long" "running")
      (my-codex-test-wait-text (my-codex--buffer-of (plist-get (my-codex-test-session "long") :id))
                               "tick")
      (my-codex-test-result 'long-pid (plist-get (my-codex-test-session "long") :pid))
      ;; Emacs exits when the test ends; it asked first.
      (should (my-codex-test-query-exit ?y))
      (should (string-match-p "2 Codex turns under way" (car my-codex-test-asked))))))

(ert-deftest my-codex-test-daemon-second-emacs ()
  "A new Emacs finds the turn running, receives its stream, and answers the approval."
  (my-codex-test-in-project
    (my-codex--load-sessions)
    (should (equal (my-codex-test-status "long") "running"))
    (should (equal (my-codex-test-status "ask") "waiting"))
    (let ((pieces 0)
          (buf (my-codex-switch-session "long")))
      (advice-add 'my-codex--insert-piece :after (lambda (&rest _) (cl-incf pieces))
                  '((name . my-codex-test-pieces)))
      (my-codex-test-wait "streamed pieces" (lambda () (> pieces 2)) 20)
      (advice-remove 'my-codex--insert-piece 'my-codex-test-pieces)
      (with-current-buffer (my-codex-pending)
        (my-codex-test-wait "the request listed"
                            (lambda () (string-match-p "touch asked.txt" (buffer-string))))
        (goto-char (point-min))
        (search-forward "touch asked.txt")
        (call-interactively #'my-codex-accept))
      (my-codex-test-wait-turns "ask" 1)
      (should (file-exists-p (expand-file-name "asked.txt" my-codex-test-project)))
      (my-codex-test-wait-turns "long" 1 30)
      (my-codex-test-wait-text buf "^Codex:\n\\(tick \\)\\{40\\}\n")
      (should (= 1 (with-current-buffer buf (how-many "^Codex:$" (point-min) (point-max))))))))

(ert-deftest my-codex-test-duo-watcher ()
  "Another Emacs's session: seen as it starts, streamed, its approval gone once answered there."
  (my-codex-test-in-project
    (my-codex--load-sessions)
    (my-codex-test-flag "watcher-ready")
    (my-codex-test-wait "the other Emacs's session" (lambda () (my-codex-test-session "duo")) 60)
    (let ((buf (my-codex-switch-session "duo"))
          (pieces 0))
      (my-codex-test-wait-status "duo" "waiting" 60)
      (my-codex-test-wait-text buf "\\[Accept\\]")
      (should (string-match-p "1 waiting" (my-codex-mode-line)))
      (my-codex-test-flag "watcher-saw-waiting")
      ;; Answered in the other Emacs: gone here too.
      (my-codex-test-wait "answered elsewhere"
                          (lambda () (let ((s (my-codex-test-session "duo")))
                                       (and (= 0 (length (plist-get s :pending)))
                                            (>= (plist-get s :turns) 1)))) 30)
      (my-codex-test-wait-text buf "^Approval r1: accept$")
      ;; The answer replaces the buttons, and the decision follows it.
      (should (string-match-p "^  -> accept\nApproval r1: accept$" (my-codex-test-text buf)))
      (should-not (string-match-p "\\[Accept\\]" (my-codex-test-text buf)))
      (my-codex-test-wait "no longer counted" (lambda () (not (string-match-p "waiting" (my-codex-mode-line)))))
      (advice-add 'my-codex--insert-piece :after (lambda (&rest _) (cl-incf pieces))
                  '((name . my-codex-test-pieces)))
      (my-codex-test-wait-turns "duo" 2 30)
      (advice-remove 'my-codex--insert-piece 'my-codex-test-pieces)
      (should (> pieces 2))
      (my-codex-test-wait-text buf "^Codex:\n\\(tick \\)\\{10\\}\n")
      (my-codex-test-result 'watcher-text (my-codex-test-text buf))
      (my-codex-test-flag "watcher-done"))))

(ert-deftest my-codex-test-duo-driver ()
  "Drive a session that another Emacs watches: answer its approval here, stream a turn."
  (my-codex-test-in-project
    (my-codex-test-wait "the other Emacs" (lambda () (my-codex-test-flag-p "watcher-ready")) 60)
    (let ((buf (my-codex-start-session "duo" "run-approved: touch duo.txt")))
      (my-codex-test-wait-status "duo" "waiting")
      (my-codex-test-wait "the other Emacs saw it waiting"
                          (lambda () (my-codex-test-flag-p "watcher-saw-waiting")) 60)
      (with-current-buffer buf (my-codex-accept))
      (my-codex-test-wait-turns "duo" 1)
      (my-codex-send "slow: 2" "duo")
      (my-codex-test-wait-turns "duo" 2)
      (my-codex-test-wait "the other Emacs done" (lambda () (my-codex-test-flag-p "watcher-done")) 60))))

;;;; Notes, learnings and learn mode

(defun my-codex-test-notes-of (project session-name &optional timeout)
  "Wait for the notetaker's note of SESSION-NAME in PROJECT; return the entries.
The wait is at most TIMEOUT seconds."
  (my-codex-test-wait
   (list 'the-note-of session-name)
   (lambda ()
     (sleep-for 0.3)
     (let ((entries (append (plist-get (my-codex--request "codex/project/learnings"
                                                          (list :project project))
                                       :entries)
                            nil)))
       (and (seq-find (lambda (e) (equal (plist-get e :sessionName) session-name)) entries)
            entries)))
   (or timeout 60)))

(defun my-codex-test-wait-review (name &optional session-getter)
  "Wait until session NAME waits on a rewritten prompt; return that request.
SESSION-GETTER finds the session by name, by default in the test project."
  (my-codex-test-wait (list name 'prompt-review)
                      (lambda ()
                        (seq-find #'my-codex--prompt-review-p
                                  (plist-get (funcall (or session-getter #'my-codex-test-session) name)
                                             :pending)))
                      60))

(defun my-codex-test-shown ()
  "Make the buffer of the selected window current, as the user sees it; return it."
  (set-buffer (window-buffer (selected-window))))

(ert-deftest my-codex-test-notes-option-and-learnings ()
  "`my-codex-notes' (also from .dir-locals.el), the notes switch, the learnings, notesError."
  (my-codex-test-in-project
    (let* ((other my-codex-test-other-project)
           (home-other (with-current-buffer (get-buffer-create "*my-codex-test other*")
                         (setq default-directory other)
                         (current-buffer))))
      ;; No note yet: said plainly, no empty buffer.
      (with-current-buffer home-other
        (should (string-match-p "\\`No learnings in other yet: the notetaker notes each turn of a session with notes on"
                                (my-codex-test-user-error #'my-codex-learnings))))
      ;; The option is sent to the sidecar as the `notes' initialization option.
      (should-not (plist-get (my-codex--initialization-options) :notes))
      (let ((my-codex-notes t))
        (should (eq (plist-get (my-codex--initialization-options) :notes) t)))
      ;; A project's .dir-locals.el turns notes on for the sessions started there,
      ;; from any of its buffers; elsewhere the global value (nil) holds.
      (with-temp-file (expand-file-name ".dir-locals.el" other)
        (insert "((nil . ((my-codex-notes . t))))\n"))
      (with-current-buffer home-other
        (my-codex-start-session "noted" "say: noted one\nnote-takeaway: a project can ask for notes"))
      (let ((plain-buf (my-codex-start-session "plain" "say: plain one")))
        (my-codex-test-wait-turns "plain" 1)
        (should (eq (plist-get (my-codex-test-session "plain") :notes) :json-false))
        (should (eq (plist-get (my-codex-test-other-session "noted") :notes) t))
        ;; The notes switch, on and off; the header says so.
        (with-current-buffer plain-buf
          (should-not (string-match-p "notes" (my-codex-test-header)))
          (call-interactively #'my-codex-toggle-notes)
          (should (eq (plist-get (my-codex-test-session "plain") :notes) t))
          (should (string-match-p "ultra/plain +idle .*  notes\\b" (my-codex-test-header)))
          (my-codex-toggle-notes -1)
          (should (eq (plist-get (my-codex-test-session "plain") :notes) :json-false))
          (should-not (string-match-p "notes" (my-codex-test-header)))
          ;; Learn mode on and off: it brings notes with it, and keeps them.
          (my-codex-toggle-learn 1)
          (should (my-codex--learning-p (my-codex-test-session "plain")))
          (should (string-match-p "  learn\\b" (my-codex-test-header)))
          (my-codex-toggle-learn)
          (let ((s (my-codex-test-session "plain")))
            (should-not (my-codex--learning-p s))
            (should (equal (plist-get (plist-get s :learn) :endedBecause) "off"))
            (should (eq (plist-get s :notes) t)))
          (should (string-match-p "  notes\\b" (my-codex-test-header)))
          (should-not (string-match-p "learn" (my-codex-test-header)))))
      ;; The learnings open on the note, in a read-only buffer visiting learnings.md.
      (my-codex-test-notes-of other "noted")
      (let ((buf (with-current-buffer home-other (my-codex-learnings))))
        (with-current-buffer buf
          (should (string-suffix-p "/learnings.md" buffer-file-name))
          (should buffer-read-only)
          (should (looking-at "## noted · Turn 1"))
          (should (string-match-p "^- Takeaway: a project can ask for notes$" (buffer-string)))
          (my-codex-test-result 'learnings-file buffer-file-name)))
      ;; A failing notetaker leaves the session working, and the header says why.
      (let ((buf (my-codex-switch-session (my-codex-test-other-session "noted"))))
        (my-codex-send "say: noted two\nnote-fail" (my-codex-test-other-session "noted"))
        (my-codex-test-wait "notesError"
                            (lambda () (plist-get (my-codex-test-other-session "noted") :notesError))
                            60)
        (with-current-buffer buf
          (should (string-match-p "other/noted +idle +.*notes failed: the notetaker failed on turn 2"
                                  (my-codex-test-header)))
          (my-codex-test-wait-text buf "^noted two$"))))))

(ert-deftest my-codex-test-learn-mode-review ()
  "Learn mode: the rewrite shown as a diff with its sources; accept, edit, decline, cancel."
  (my-codex-test-in-project
    (let ((root (my-codex--root-key my-codex-test-project))
          (my-codex-test-messages nil))
      ;; A first session leaves a note in the project.
      (my-codex-start-session "first" "say: fixtures\nnote-gap: what a pytest fixture is\nnote-takeaway: use the tmp_path fixture for files"
                              nil '(:notes t))
      (my-codex-test-notes-of root "first")
      ;; C-c x S asks for notes: learn mode.
      (let (asked)
        (cl-letf (((symbol-function 'completing-read)
                   (lambda (prompt &rest _)
                     (push prompt asked)
                     (cond ((string-prefix-p "Start Codex session" prompt) "learner")
                           ((string-prefix-p "Notes" prompt) "learn")
                           ((string-prefix-p "Work in" prompt) "shared")
                           ((string-prefix-p "Role" prompt) "worker")
                           (t ""))))
                  ((symbol-function 'read-string)
                   (lambda (prompt &rest _)
                     (if (string-prefix-p "First prompt" prompt)
                         "say: original one\nrewrite: say: rewritten one"
                       ""))))
          (my-codex-start-session-with-options))
        (should (member "Notes (default off): " asked)))
      (let* ((buf (get-buffer (plist-get (my-codex-test-session "learner") :bufferName)))
             (session (my-codex-test-session "learner"))
             (review (my-codex-test-wait-review "learner")))
        (should (eq (plist-get session :notes) t))
        (my-codex-test-result 'learner-id (plist-get session :id))
        ;; Announced (its buffer is not in view in batch), headline, header.
        (my-codex-test-wait "announcement"
                            (lambda () (cl-some (lambda (m) (string-match-p "ultra/learner: learn mode rewrote your prompt" m))
                                                my-codex-test-messages)))
        (should (equal (plist-get (my-codex-test-session "learner") :headline)
                       "waits: learn mode rewrote the prompt: accept, edit or decline"))
        (with-current-buffer buf
          (should (string-match-p "ultra/learner +waiting +turns 0 +prompt rewritten: C-c C-a send the rewrite, C-c C-e edit it, C-c C-d send yours .*  learn\\b"
                                  (my-codex-test-header)))
          (my-codex-test-wait-text buf "Learn mode rewrote your prompt (r[0-9]+): accept, edit or decline\n  \\[Review\\] \\[Accept\\] \\[Edit\\] \\[Decline\\]"))
        ;; 1. From the inbox, RET shows the review: a diff, with the note it drew on.
        (let ((inbox (my-codex-pending)))
          (with-current-buffer inbox
            (my-codex-test-wait "drawn" (lambda () (string-match-p "learner" (buffer-string))))
            (should (string-match-p "ultra +learner +promptReview +rewrite of: say: original one"
                                    (buffer-string)))
            (goto-char (point-min))
            (search-forward "learner")
            (should (eq (key-binding (kbd "RET")) #'my-codex-pending-visit))
            (call-interactively #'my-codex-pending-visit)))
        (let ((review-buf (my-codex-test-shown)))
          (should (eq major-mode 'my-codex-review-mode))
          (should (derived-mode-p 'diff-mode))
          (should (equal (buffer-name) "*codex review: ultra/learner*"))
          (let ((text (my-codex-test-text review-buf)))
            (my-codex-test-result 'review-text text)
            (should (string-match-p "^--- original\n\\+\\+\\+ rewrite\n@@ " text))
            (should (string-match-p "^-say: original one$" text))
            (should (string-match-p "^\\+say: rewritten one$" text))
            (should (string-match-p "^  \\[L[0-9]+\\] session first, turn 1: .*Takeaway: use the tmp_path fixture for files \\[turn\\]$" text)))
          ;; The note it drew on is a button to the note in learnings.md.
          (goto-char (point-min))
          (re-search-forward "^  \\[L")
          (push-button (point))
          (should (string-suffix-p "/learnings.md" buffer-file-name))
          (should (looking-at "## first · Turn 1"))
          (set-buffer review-buf)
          (should (eq (key-binding (kbd "a")) #'my-codex-accept))
          (should (eq (key-binding (kbd "e")) #'my-codex-edit-prompt))
          (should (eq (key-binding (kbd "d")) #'my-codex-decline))
          (should (eq (key-binding (kbd "c")) #'my-codex-review-cancel))
          (call-interactively (key-binding (kbd "a")))
          (should-not (buffer-live-p review-buf)))
        (set-buffer (my-codex-test-home))
        (my-codex-test-wait-turns "learner" 1)
        (my-codex-test-wait-text buf "^> say: rewritten one$")
        (my-codex-test-wait-text buf "^Prompt review r[0-9]+: accept$")
        ;; 2. C-c C-e in the session edits the rewrite; C-c C-k leaves it waiting;
        ;; e in the inbox edits it again, and C-c C-c sends what was written.
        (my-codex-send "say: original two\nrewrite: say: rewritten two" "learner")
        (my-codex-test-wait-review "learner")
        (with-current-buffer buf
          ;; No turn under way yet: no elapsed time (not the last turn's).
          (should (string-match-p "ultra/learner +waiting +turns 1 +prompt rewritten" (my-codex-test-header)))
          (should (eq (key-binding (kbd "C-c C-e")) #'my-codex-edit-prompt))
          ;; Sending more meanwhile is refused, clearly.
          (should (string-match-p "waits for you to review your rewritten prompt first"
                                  (my-codex-test-user-error #'my-codex-send "say: more" "learner")))
          (call-interactively #'my-codex-edit-prompt))
        (my-codex-test-shown)
        (should (eq major-mode 'my-codex-prompt-edit-mode))
        (should (equal (buffer-string) "say: rewritten two"))
        (should (eq (key-binding (kbd "C-c C-k")) #'my-codex-prompt-edit-abort))
        (call-interactively #'my-codex-prompt-edit-abort)
        (set-buffer (my-codex-test-home))
        (should-not (get-buffer "*codex edit: ultra/learner*"))
        (should (my-codex-test-wait-review "learner"))
        (with-current-buffer (my-codex-pending)
          (my-codex-test-wait "drawn" (lambda () (string-match-p "original two" (buffer-string))))
          (goto-char (point-min))
          (search-forward "original two")
          (should (eq (key-binding (kbd "e")) #'my-codex-edit-prompt))
          (call-interactively #'my-codex-edit-prompt))
        (my-codex-test-shown)
        (should (eq major-mode 'my-codex-prompt-edit-mode))
        (erase-buffer)
        (insert "say: edited two\n")
        (should (eq (key-binding (kbd "C-c C-c")) #'my-codex-prompt-edit-send))
        (call-interactively #'my-codex-prompt-edit-send)
        (set-buffer (my-codex-test-home))
        (should-not (get-buffer "*codex edit: ultra/learner*"))
        (my-codex-test-wait-turns "learner" 2)
        (my-codex-test-wait-text buf "^> say: edited two$")
        ;; 3. d in the inbox sends the prompt as typed (the turn leaves a gap open).
        (my-codex-send "say: original three\nrewrite: say: rewritten three\nnote-gap: what conftest.py is"
                       "learner")
        (my-codex-test-wait-review "learner")
        (with-current-buffer (my-codex-pending)
          (my-codex-test-wait "drawn" (lambda () (string-match-p "original three" (buffer-string))))
          (goto-char (point-min))
          (search-forward "original three")
          (call-interactively (key-binding (kbd "d"))))
        (my-codex-test-wait-turns "learner" 3)
        (my-codex-test-wait-text buf "^> say: original three\n  rewrite: say: rewritten three\n  note-gap: what conftest.py is$")
        (with-current-buffer buf
          (my-codex-test-wait "the open gap in the header"
                              (lambda () (string-match-p "  learn (1 open gap)" (my-codex-test-header)))
                              60))
        ;; 4. v in the list shows the review; c there sends nothing, and the
        ;; prompt goes back to the session buffer's prompt.
        (my-codex-send "say: four\nrewrite: say: 4" "learner")
        (my-codex-test-wait-review "learner")
        (with-current-buffer (my-codex-list-sessions)
          (my-codex-test-wait "listed" (lambda () (string-match-p "learner" (buffer-string))))
          (goto-char (point-min))
          (search-forward "learner")
          (should (eq (key-binding (kbd "v")) #'my-codex-prompt-review))
          (call-interactively #'my-codex-prompt-review))
        (my-codex-test-shown)
        (should (eq major-mode 'my-codex-review-mode))
        (should (string-match-p "^\\+say: 4$" (buffer-string)))
        (call-interactively (key-binding (kbd "c")))
        (set-buffer (my-codex-test-home))
        (my-codex-test-wait "idle, nothing sent"
                            (lambda () (let ((s (my-codex-test-session "learner")))
                                         (and (equal (plist-get s :status) "idle")
                                              (null (append (plist-get s :pending) nil))))))
        (should (= 3 (plist-get (my-codex-test-session "learner") :turns)))
        (with-current-buffer buf
          (should (equal (my-codex--prompt-text) "say: four\nrewrite: say: 4"))
          (my-codex--set-prompt ""))
        ;; 5. With the session on screen, the review opens by itself, selected;
        ;; a sends the rewrite and brings you back to the session.
        (switch-to-buffer buf)
        (my-codex-send "say: five\nrewrite: say: rewritten five" "learner")
        (let ((review-buf (my-codex-test-wait
                           "the review on screen"
                           (lambda () (let ((shown (window-buffer (selected-window))))
                                        (and (equal (buffer-name shown) "*codex review: ultra/learner*")
                                             shown)))
                           60)))
          (should (get-buffer-window buf))
          (set-buffer review-buf)
          (should (string-match-p "^\\+say: rewritten five$" (buffer-string)))
          (call-interactively (key-binding (kbd "a")))
          (should (eq (window-buffer (selected-window)) buf)))
        (set-buffer (my-codex-test-home))
        (my-codex-test-wait-turns "learner" 4)
        (my-codex-test-wait-text buf "^> say: rewritten five$")
        ;; 6. A turn that resolves the gap ends learn mode; the header says so.
        (my-codex-send "say: original six\nrewrite: say: 6\nnote-resolved" "learner")
        (my-codex-test-wait-review "learner")
        (my-codex-respond "decline" nil (my-codex-test-session "learner"))
        (my-codex-test-wait "learn mode ended"
                            (lambda () (equal (plist-get (plist-get (my-codex-test-session "learner") :learn)
                                                         :endedBecause)
                                              "resolved"))
                            60)
        (with-current-buffer buf
          (should (string-match-p "  notes  learn ended: gaps resolved" (my-codex-test-header))))))))

(provide 'my-codex-tests)
;;; my-codex-tests.el ends here
