;;; my-codex-tests.el --- ERT tests of my-codex.el against the real sidecar  -*- lexical-binding: t; -*-

;;; Commentary:

;; Each test is run in its own `emacs -Q --batch' by tests/test_emacs.py,
;; with a fresh sidecar state, a fresh project and the scripted model.
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
        ;; Once complete, the message is shown once, not twice.
        (my-codex-test-wait-text buf "^Codex:\n\\(tick \\)\\{8\\}\n\\[idle\\]")
        (should (= 1 (with-current-buffer buf (how-many "^Codex:$" (point-min) (point-max)))))
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
                                       (and (= (plist-get s :turns) 4)
                                            (not (member (plist-get s :status)
                                                         my-codex--active-statuses))))))
      (my-codex-test-wait-text buf "^Error: .+")
      (my-codex-test-wait-text buf "Status: failed")
      ;; The header line shows the status and the turns.
      (with-current-buffer buf
        (let ((header (my-codex-test-header)))
          (should (string-match-p "ultra/main +idle" header))
          (should (string-match-p "turns 4" header))))
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
    (let ((live (my-codex--list nil)))
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
    (should (seq-filter #'my-codex--live-p (my-codex--list nil)))
    ;; With a prefix argument, every project.
    (cl-letf (((symbol-function 'yes-or-no-p) (lambda (&rest _) t)))
      (let ((current-prefix-arg '(4)))
        (call-interactively #'my-codex-kill-all-sessions)))
    (should-not (seq-filter #'my-codex--live-p (my-codex--list nil)))
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
    (mapcar (lambda (entry) (aref (cadr entry) 1)) tabulated-list-entries)))

(ert-deftest my-codex-test-list-ordering-and-keys ()
  "The list shows waiting and failed sessions on top, refreshed live; its keys work."
  (my-codex-test-in-project
    (let ((list (my-codex-list-sessions)))
      (should (equal (my-codex-test-list-names list) nil))
      (my-codex-start-session "alpha" "say: alpha is done")
      (my-codex-test-wait-turns "alpha" 1)
      (my-codex-start-session "gamma")
      (my-codex-start-session "delta")
      (my-codex-start-session "beta" "run-approved: touch beta.txt")
      (my-codex-test-wait-status "gamma" "idle")
      (my-codex-test-wait-status "delta" "idle")
      (my-codex-send "slow: 30" (my-codex-test-session "delta"))
      (my-codex-test-wait-status "delta" "running")
      (signal-process (plist-get (my-codex-test-session "gamma") :pid) 'KILL)
      (my-codex-test-wait-status "gamma" "failed")
      (my-codex-test-wait-status "beta" "waiting")
      ;; The list buffer follows on its own, without `g'.
      (my-codex-test-wait "list order"
                          (lambda () (equal (my-codex-test-list-names list)
                                            '("beta" "gamma" "delta" "alpha"))))
      (with-current-buffer list
        (let ((text (buffer-substring-no-properties (point-min) (point-max))))
          (my-codex-test-result 'list-text text)
          (should (string-match-p "ultra +beta +waiting .*run-approved: touch beta.txt" text))
          (should (string-match-p "ultra +gamma +failed .*Codex exited" text))
          (should (string-match-p "ultra +alpha +idle .*say: alpha is done -- " text)))
        (my-codex-test-result 'list-header (my-codex-test-header))
        ;; c cancels the running turn of the line.
        (goto-char (point-min))
        (should (search-forward-regexp "^ *ultra +delta" nil t))
        (should (eq (key-binding (kbd "c")) #'my-codex-list-cancel))
        (call-interactively #'my-codex-list-cancel)
        (my-codex-test-wait-status "delta" "idle")
        (should (equal (plist-get (plist-get (my-codex-test-session "delta") :lastTurn) :status)
                       "interrupted"))
        ;; R shows the report.
        (goto-char (point-min))
        (search-forward-regexp "^ *ultra +alpha")
        (call-interactively #'my-codex-list-report)
        (should (string-match-p "^Session: alpha\nStatus: done"
                                (with-current-buffer "*my-codex report*" (buffer-string))))
        ;; r renames, k kills.
        (goto-char (point-min))
        (search-forward-regexp "^ *ultra +alpha")
        (cl-letf (((symbol-function 'read-string) (lambda (&rest _) "omega")))
          (call-interactively #'my-codex-list-rename))
        (should (member "omega" (my-codex-test-list-names list)))
        (goto-char (point-min))
        (search-forward-regexp "^ *ultra +omega")
        (call-interactively #'my-codex-list-kill)
        (should-not (member "omega" (my-codex-test-list-names list)))
        ;; g refreshes from the sidecar.
        (should (eq (key-binding (kbd "g")) #'revert-buffer))
        (setq tabulated-list-entries nil)
        (call-interactively #'revert-buffer)
        (should (equal (my-codex-test-list-names list) '("beta" "gamma" "delta")))
        ;; RET visits.
        (goto-char (point-min))
        (search-forward-regexp "^ *ultra +beta")
        (call-interactively #'my-codex-list-visit)
        (should (equal (buffer-name) (plist-get (my-codex-test-session "beta") :bufferName))))
      ;; A prefix argument lists every project.
      (let ((default-directory my-codex-test-other-project))
        (my-codex-start-session "main"))
      (let ((all (let ((current-prefix-arg '(4)))
                   (call-interactively #'my-codex-list-sessions))))
        (should (member "main" (my-codex-test-list-names all)))
        (should (string-match-p "^ *other +main" (with-current-buffer all (buffer-string)))))
      (let ((mine (my-codex-list-sessions)))
        (should-not (member "main" (my-codex-test-list-names mine)))
        ;; K kills all of the line's project, asking once.
        (with-current-buffer mine
          (goto-char (point-min))
          (search-forward-regexp "^ *ultra +beta")
          (let ((asked 0))
            (cl-letf (((symbol-function 'yes-or-no-p) (lambda (&rest _) (cl-incf asked) t)))
              (call-interactively #'my-codex-list-kill-all))
            (should (= asked 1))))
        (should-not (seq-filter #'my-codex--live-p (my-codex--list (my-codex--project))))))))

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
  "After the sidecar and the buffer are gone, switching rebuilds the buffer and can resume."
  (my-codex-test-in-project
    (let ((buf (my-codex-start-session "main" "say: remember the lighthouse"))
          collection annotate)
      (my-codex-test-wait-turns "main" 1)
      (my-codex-start-session "review")
      ;; Completion offers the project's sessions, with their status.
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt table &rest _)
                   (setq collection (all-completions "" table)
                         annotate (alist-get 'annotation-function
                                             (cdr (funcall table "" nil 'metadata))))
                   "main")))
        (should (eq (call-interactively #'my-codex-switch-session) buf)))
      (should (equal (sort (copy-sequence collection) #'string<) '("main" "review")))
      (should (string-match-p "idle +say: remember the lighthouse" (funcall annotate "main")))
      (my-codex-test-result 'before (my-codex-test-text buf))
      ;; "Restart Emacs": stop the sidecar, forget everything, kill the buffers.
      (my-codex-shutdown)
      (should-not (my-codex--live-connection))
      (kill-buffer buf)
      (set-buffer (my-codex-test-home))
      (clrhash my-codex--sessions)
      (clrhash my-codex--buffers)
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt table &rest _)
                   (setq collection (all-completions "" table)) "main")))
        (setq buf (call-interactively #'my-codex-switch-session)))
      (should (my-codex--live-connection))
      (should (equal (buffer-name buf) (plist-get (my-codex-test-session "main") :bufferName)))
      (should (equal (my-codex-test-status "main") "interrupted"))
      (let ((text (my-codex-test-text buf)))
        (my-codex-test-result 'rebuilt text)
        (should (string-match-p "^> say: remember the lighthouse$" text))
        (should (string-match-p "^Codex:\nremember the lighthouse$" text)))
      ;; Sending resumes the session (the same Codex thread) first.
      (with-current-buffer buf
        (my-codex-send "say: back again"))
      (my-codex-test-wait-turns "main" 2)
      (my-codex-test-wait-text buf "^back again$")
      ;; Kill, then resume explicitly.
      (my-codex-kill-session "main")
      (my-codex-test-wait "stopped" (lambda () (equal (plist-get (my-codex--get "main") :status)
                                                      "stopped")))
      (my-codex-resume-session "main")
      (my-codex-test-wait-status "main" "idle")
      (should (my-codex--live-p (my-codex-test-session "main"))))))

(ert-deftest my-codex-test-sidecar-crash-restarts ()
  "When the sidecar dies, it is started again and the open buffer reconnects."
  (my-codex-test-in-project
    (let* ((buf (my-codex-start-session "main" "say: before the crash"))
           (old (my-codex--live-connection)))
      (my-codex-test-wait-turns "main" 1)
      (signal-process (process-id (jsonrpc--process old)) 'KILL)
      ;; While it is down, the buffer says so and nothing is counted.
      (my-codex-test-wait "the sidecar gone" (lambda () (not (my-codex--live-connection))))
      (with-current-buffer buf
        (should (string-match-p "sidecar not running" (my-codex-test-header))))
      (should (equal (my-codex-mode-line) ""))
      (my-codex-test-wait "a new sidecar"
                          (lambda () (let ((conn (my-codex--live-connection)))
                                       (and conn (not (eq conn old))))))
      (my-codex-test-wait-status "main" "interrupted")
      (with-current-buffer buf
        (my-codex-send "say: after the crash"))
      (my-codex-test-wait-turns "main" 2)
      (my-codex-test-wait-text buf "^after the crash$")
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

(ert-deftest my-codex-test-polite-exit-and-troubleshooting ()
  "The events and stderr buffers are one command away; Emacs exiting stops everything."
  (my-codex-test-in-project
    (my-codex-start-session "main" "say: hello")
    (my-codex-test-wait-turns "main" 1)
    (let* ((conn (my-codex--live-connection))
           (proc (jsonrpc--process conn))
           (codex-pid (plist-get (my-codex-test-session "main") :pid))
           (events (window-buffer (my-codex-show-events)))
           (stderr (window-buffer (my-codex-show-stderr))))
      (should (integerp codex-pid))
      (should (process-attributes codex-pid))
      (with-current-buffer events
        (should (string-match-p "codex/session/start" (buffer-string)))
        (should (string-match-p "codex/session/output" (buffer-string))))
      (should (eq stderr (jsonrpc-stderr-buffer conn)))
      ;; What `kill-emacs' runs.
      (should (memq #'my-codex--kill-emacs kill-emacs-hook))
      (run-hooks 'kill-emacs-hook)
      (should-not (process-live-p proc))
      (should (eql (process-exit-status proc) 0))
      (should-not (my-codex--live-connection))
      (my-codex-test-wait "Codex gone" (lambda () (not (process-attributes codex-pid))) 15)
      (my-codex-test-result 'codex-pid codex-pid)
      ;; The session was kept: a new sidecar knows it.
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
        (let ((last-command nil)) (undo))
        (should (equal (my-codex--prompt-text) "hello"))
        (let ((last-command 'undo)) (undo-more 1))
        (should (equal (my-codex--prompt-text) ""))
        (should (equal (buffer-substring-no-properties (point-min) my-codex--prompt-start)
                       transcript))))))

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
                                              (buffer-string))))))))

(provide 'my-codex-tests)
;;; my-codex-tests.el ends here
