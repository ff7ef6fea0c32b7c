;;; my-codex.el --- Named Codex sessions per project, run by codex-sessions  -*- lexical-binding: t; -*-

;; Copyright (C) 2026 The codex-sessions authors

;; Author: The codex-sessions authors
;; Version: 0.2.0
;; Package-Requires: ((emacs "28.1"))
;; Keywords: tools, processes, convenience

;; This file is not part of GNU Emacs.

;; Permission is hereby granted, free of charge, to any person obtaining a
;; copy of this software, to deal in it without restriction, under the
;; terms of the MIT license that comes with codex-sessions.

;;; Commentary:

;; A thin Emacs client of codex-sessions, which runs named OpenAI Codex
;; sessions per project.  Emacs runs `codex-sessions serve', which
;; relays to the user's codex-sessions daemon: sessions belong to the
;; user, not to this Emacs, and go on when Emacs exits.  The sidecar
;; owns names, buffer names, statuses, list lines and order,
;; transcripts and reports; this file renders them and sends commands
;; over the built-in `jsonrpc.el'.
;;
;; Start with \\[my-codex-start-session].  Each session has a buffer named
;; as the sidecar says, e.g. *codex:ultra:main:1a2b3c4d*, which shows the
;; conversation as it streams and takes the next prompt at its end.
;; \\[my-codex-list-sessions] lists sessions, \\[my-codex-pending] lists
;; what waits on you; `my-codex-command-map' holds every command for
;; binding under a prefix key of your choice.

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'seq)
(require 'jsonrpc)
(require 'project)
(require 'tabulated-list)
(require 'button)
(require 'parse-time)
(require 'text-property-search)
(require 'rmc)
(require 'diff-mode)
(require 'log-edit)

(defconst my-codex-version "0.2.0"
  "The version of my-codex.el.")

;;;; Configuration

(defgroup my-codex nil
  "Named Codex sessions per project, run by the codex-sessions sidecar."
  :group 'tools
  :prefix "my-codex-")

(defcustom my-codex-sidecar-command '("codex-sessions" "serve")
  "The command that connects Emacs to codex-sessions, as a list of strings.
`codex-sessions serve' relays to the daemon that owns the sessions,
starting it when none runs, so sessions go on when Emacs exits.
Add \"--standalone\" to run the sessions inside that process
instead: they then stop when Emacs exits."
  :type '(repeat string))

(defcustom my-codex-codex-command nil
  "The command that starts Codex, as a list; nil lets the sidecar choose.
The sidecar appends `app-server' to it.  When nil, the sidecar uses
the environment variable CODEX_SESSIONS_CODEX, else \"codex\".  It
applies to the sessions this Emacs starts, and is recorded with them."
  :type '(choice (const :tag "The sidecar's default" nil) (repeat string)))

(defcustom my-codex-codex-extra-args nil
  "Extra arguments given to Codex before `app-server', such as \"-c\" \"k=v\".
They are appended to `my-codex-codex-command', or to the sidecar's
default Codex command when that is nil."
  :type '(repeat string))

(defcustom my-codex-codex-process nil
  "How the sessions this Emacs starts share Codex processes.
nil lets the sidecar choose (one Codex process per project);
`per-project' says so explicitly; `per-session' gives each session
its own Codex process, so that one Codex dying fails one session
only."
  :type '(choice (const :tag "The sidecar's default" nil)
                 (const :tag "One Codex per project" per-project)
                 (const :tag "One Codex per session" per-session)))

(defcustom my-codex-state-directory nil
  "The folder where codex-sessions keeps its records; nil lets it choose.
Each state folder has its own daemon."
  :type '(choice (const :tag "The sidecar's default" nil) directory))

(defcustom my-codex-notify-function #'my-codex-notify-echo-area
  "A function called when a session in the background finishes a turn.
It receives two arguments: the session (a plist as the sidecar sends
it) and the report's text.  The default shows the report's first
lines in the echo area; `notifications-notify' or alert.el can be
called from your own function instead."
  :type 'function)

(defcustom my-codex-pop-to-buffer-on-start t
  "Whether `my-codex-start-session' displays the session's buffer."
  :type 'boolean)

(defcustom my-codex-request-timeout 30
  "Seconds to wait for the sidecar to answer a request."
  :type 'number)

(defcustom my-codex-collapse-output-lines 8
  "Command output longer than this many lines starts collapsed."
  :type 'integer)

(defcustom my-codex-events-buffer-size 2000000
  "How many characters of protocol traffic the events buffer keeps.
0 turns the events buffer off; nil keeps everything."
  :type '(choice (const :tag "Unlimited" nil) integer))

(defcustom my-codex-default-session-name "main"
  "The session name used when none is given."
  :type 'string)

(defcustom my-codex-default-isolation nil
  "Where new sessions work: nil (the sidecar's default), `shared' or `worktree'.
`shared': in the project's own work tree, beside you and the other
sessions.  `worktree': in a git work tree of its own, on a branch
codex/NAME, until you merge or discard it.  It can be set per
project in .dir-locals.el."
  :type '(choice (const :tag "The sidecar's default (shared)" nil)
                 (const :tag "The project's own work tree" shared)
                 (const :tag "A git work tree of its own" worktree))
  :safe (lambda (v) (memq v '(nil shared worktree))))

(defcustom my-codex-notes nil
  "Whether the sessions this Emacs starts have the notetaker.
After each turn of such a session the notetaker, a hidden read-only
Codex conversation, writes a note of what the turn did, the gap or
confusion it saw and the takeaway, in the project's learnings
\(\[my-codex-learnings]).  It spends model tokens: one request per
turn.  It can be set per project in .dir-locals.el;
\[my-codex-toggle-notes] turns it on or off for one session, and
\[my-codex-start-session-with-options] asks."
  :type 'boolean
  :safe #'booleanp)

(defcustom my-codex-steer 'ask
  "What sending a prompt does while the session runs a turn.
`ask': ask whether to add it to the running turn (steer);
`always': add it without asking; nil: refuse, as the sidecar does
\(the session is busy)."
  :type '(choice (const :tag "Ask" ask) (const :tag "Add it to the turn" always)
                 (const :tag "Refuse" nil)))

(defface my-codex-user-face '((t :inherit font-lock-keyword-face :weight bold))
  "Face for the user's prompts in a session buffer.")

(defface my-codex-heading-face '((t :inherit font-lock-function-name-face :weight bold))
  "Face for the headings of items in a session buffer.")

(defface my-codex-reasoning-face '((t :inherit shadow :slant italic))
  "Face for the agent's reasoning.")

(defface my-codex-command-face '((t :inherit font-lock-string-face))
  "Face for commands the agent ran.")

(defface my-codex-output-face '((t :inherit shadow))
  "Face for the output of commands.")

(defface my-codex-approval-face '((t :inherit warning))
  "Face for approval requests.")

(defface my-codex-error-face '((t :inherit error))
  "Face for errors.")

(defface my-codex-status-face '((t :inherit shadow))
  "Face for status changes and the prompt separator.")

;;;; State

(defvar my-codex--connection nil
  "The `my-codex-connection' to the sidecar, or nil.
It may still be starting: see `my-codex--ready'.")

(defvar my-codex--shutting-down nil
  "Non-nil while the connection is being closed on purpose.")

(defvar my-codex--sessions (make-hash-table :test #'equal)
  "Session id to the latest session plist the sidecar sent.
Filled by one `codex/session/list' when a connection starts and kept
up to date by notifications; lists and completion read it.")

(defvar my-codex--sessions-loaded nil
  "Non-nil once `my-codex--sessions' holds every session of the sidecar.")

(defvar my-codex--buffers (make-hash-table :test #'equal)
  "Session id to the buffer that shows it.")

(defvar my-codex--restarts nil
  "Times of recent automatic restarts of the sidecar.")

(defvar my-codex--handler-errors nil
  "Errors raised while handling notifications, most recent first.")

(defvar my-codex--tick-timer nil
  "Timer that redraws elapsed times while sessions run.")

(defvar my-codex--views-timer nil
  "Timer of a pending redraw of the list and pending buffers.")

(defvar my-codex--name-history nil
  "Minibuffer history of session names.")

(defvar my-codex--prompt-history nil
  "Minibuffer history of prompts.")

(defvar-local my-codex--session-id nil
  "The id of the session this buffer shows.")

(defvar-local my-codex--diff-session-id nil
  "The id of the session whose changes this diff buffer shows.")

(defvar-local my-codex--review nil
  "In a prompt review or edit buffer: (SESSION-ID . REQUEST), what it is about.
REQUEST is the `promptReview' request as the sidecar sent it.")

(defvar-local my-codex--last-seq 0
  "The seq of the last transcript item in this buffer.")

(defvar-local my-codex--output-end nil
  "Marker where transcript items are inserted, before the prompt.")

(defvar-local my-codex--prompt-start nil
  "Marker where the user's prompt begins.")

(defvar-local my-codex--streams nil
  "Alist of item id to (START . END) markers of text still streaming.
END is before the newline that closes the streamed text.")

(defvar-local my-codex--resyncing nil
  "Non-nil while missing transcript items are being fetched.")

(defvar-local my-codex--resync-missed nil
  "Non-nil when items were passed over while a fetch was under way.")

(defvar-local my-codex--turn 0
  "The number of the turn the items inserted last belong to (1 = the first).
A fork's transcript starts at the turn it was forked after.")

(defvar-local my-codex--prompts nil
  "The prompts of this buffer's session, most recent first, for \\[my-codex-previous-input].")

(defvar-local my-codex--history-index nil
  "Index in `my-codex--prompts' of the prompt shown, while cycling.")

(defvar-local my-codex--history-draft nil
  "What was typed at the prompt before cycling through earlier prompts.")

(defconst my-codex--active-statuses '("queued" "starting" "running" "waiting")
  "Statuses of a session whose turn or start is under way.")

;;;; Connection

(defclass my-codex-connection (jsonrpc-process-connection)
  ((ready :initform nil :accessor my-codex--ready
          :documentation "Non-nil once the sidecar answered `initialize'.")
   (failure :initform nil :accessor my-codex--failure
            :documentation "Why the connection could not start, or nil.")
   (waiters :initform nil :accessor my-codex--waiters
            :documentation "Functions to call with the connection once it is ready.")
   (daemon :initform 'unknown :accessor my-codex--daemon
           :documentation "The daemon's status plist when Emacs is served by the daemon,
`standalone' for a `serve --standalone' sidecar, `unknown' before it said."))
  :documentation "A JSON-RPC connection to codex-sessions (`codex-sessions serve').")

(defun my-codex--initialization-options ()
  "Return the `initializationOptions' built from the user's options."
  (let ((options nil))
    (when my-codex-codex-command
      (setq options (plist-put options :codexCommand (vconcat my-codex-codex-command))))
    (when my-codex-codex-extra-args
      (setq options (plist-put options :codexArgs (vconcat my-codex-codex-extra-args))))
    (when my-codex-codex-process
      (setq options (plist-put options :codexProcess
                               (if (eq my-codex-codex-process 'per-session)
                                   "perSession" "perProject"))))
    (when my-codex-state-directory
      (setq options (plist-put options :stateDir
                               (expand-file-name my-codex-state-directory))))
    (when (default-value 'my-codex-notes)
      (setq options (plist-put options :notes t)))
    (or options (make-hash-table))))

(defun my-codex--spawn ()
  "Start the sidecar and send `initialize' without waiting; return the connection."
  (let ((program (car my-codex-sidecar-command)))
    (unless (and program (executable-find program))
      (user-error "Cannot find the sidecar program %S: install codex-sessions or set `my-codex-sidecar-command'"
                  program)))
  (let* ((name "my-codex")
         (default-directory (expand-file-name "~/"))
         (conn
          (make-instance
           'my-codex-connection
           :name name
           :events-buffer-scrollback-size my-codex-events-buffer-size
           :notification-dispatcher #'my-codex--dispatch-notification
           :request-dispatcher #'my-codex--dispatch-request
           :on-shutdown #'my-codex--on-shutdown
           :process
           (lambda ()
             (make-process
              :name name
              :command my-codex-sidecar-command
              :connection-type 'pipe
              :coding 'utf-8-emacs-unix
              :noquery t
              :stderr (get-buffer-create (format "*%s stderr*" name)))))))
    (setq my-codex--connection conn)
    (my-codex--install-mode-line)
    (jsonrpc-async-request
     conn :initialize
     (list :processId (emacs-pid)
           :clientInfo (list :name "my-codex" :version my-codex-version)
           :capabilities (make-hash-table)
           :initializationOptions (my-codex--initialization-options))
     :success-fn (lambda (_result) (my-codex--initialized conn))
     :error-fn (lambda (error)
                 (my-codex--not-started
                  conn (my-codex--error-text error "initialize" my-codex-request-timeout)))
     :timeout my-codex-request-timeout
     :timeout-fn (lambda ()
                   (my-codex--not-started
                    conn (format "no answer to initialize within %s seconds"
                                 my-codex-request-timeout))))
    conn))

(defun my-codex--initialized (conn)
  "CONN answered `initialize': learn the sessions, then run what waited for it."
  (jsonrpc-notify conn :initialized (make-hash-table))
  (setf (my-codex--ready conn) t)
  (my-codex--after-connect conn)
  (let ((waiters (reverse (my-codex--waiters conn))))
    (setf (my-codex--waiters conn) nil)
    (dolist (waiter waiters)
      (condition-case err
          (funcall waiter conn)
        (error (message "my-codex: %s" (error-message-string err)))))))

(defun my-codex--not-started (conn why)
  "CONN could not start, because of WHY: say so and close it."
  (setf (my-codex--failure conn) why)
  (setf (my-codex--waiters conn) nil)
  (message "codex-sessions did not start: %s (see M-x my-codex-show-stderr)" why)
  (let ((my-codex--shutting-down t))
    (ignore-errors (jsonrpc-shutdown conn)))
  (when (eq my-codex--connection conn)
    (setq my-codex--connection nil))
  (my-codex--schedule-views))

(defun my-codex--connect (&optional then)
  "Return the connection; start the sidecar, without waiting, if it is not up.
Call THEN with the connection once it is ready (at once if it is)."
  (let ((conn (if (and my-codex--connection (jsonrpc-running-p my-codex--connection))
                  my-codex--connection
                (my-codex--spawn))))
    (when then
      (if (my-codex--ready conn)
          (funcall then conn)
        (push then (my-codex--waiters conn))))
    conn))

(defun my-codex--wait (what done)
  "Wait until DONE gives non-nil; after a moment, say Emacs waits for WHAT.
\\[keyboard-quit] stops waiting.  Return DONE's value."
  (let ((start (float-time))
        (told nil)
        (value nil))
    (unwind-protect
        (while (not (setq value (funcall done)))
          (when (and (not told) (> (- (float-time) start) 0.5))
            (setq told t)
            (message "codex-sessions: %s... (C-g stops waiting)" what))
          (accept-process-output nil 0.05))
      (when told (message nil)))
    value))

(defun my-codex--ensure-connection ()
  "Return a ready connection, starting the sidecar and waiting for it if needed.
For commands whose result the user waits for; the others use
`my-codex--connect'."
  (let ((conn (my-codex--connect)))
    (my-codex--wait "starting" (lambda () (or (my-codex--ready conn)
                                              (my-codex--failure conn)
                                              (not (jsonrpc-running-p conn)))))
    (unless (my-codex--ready conn)
      (user-error "The codex-sessions sidecar did not start: %s (see M-x my-codex-show-stderr)"
                  (or (my-codex--failure conn) "it exited")))
    conn))

(defun my-codex--live-connection ()
  "Return the ready connection, or nil without starting anything."
  (and my-codex--connection (jsonrpc-running-p my-codex--connection)
       (my-codex--ready my-codex--connection)
       my-codex--connection))

(defun my-codex--standalone-p ()
  "Return non-nil when serving a standalone sidecar (`serve --standalone')."
  (when-let ((conn (my-codex--live-connection)))
    (eq (my-codex--daemon conn) 'standalone)))

(defun my-codex--on-shutdown (conn)
  "Forget CONN, which has exited, and restart it if sessions are shown."
  (unless (or (my-codex--ready conn) (my-codex--failure conn))
    (setf (my-codex--failure conn) "it exited"))
  (when (eq conn my-codex--connection)
    (setq my-codex--connection nil)
    (unless (or my-codex--shutting-down (not (my-codex--ready conn)))
      (message "codex-sessions exited; see M-x my-codex-show-stderr")
      (when (my-codex--session-buffers)
        (let ((now (float-time)))
          (setq my-codex--restarts
                (cl-remove-if (lambda (time) (< time (- now 60))) my-codex--restarts))
          (when (< (length my-codex--restarts) 3)
            (push now my-codex--restarts)
            (run-with-timer 1 nil #'my-codex--restart-quietly)))))
    (force-mode-line-update t)))

(defun my-codex--restart-quietly ()
  "Connect again after the sidecar died, reporting a failure as a message."
  (unless my-codex--connection
    (condition-case err
        (my-codex--connect)
      (error (message "codex-sessions could not restart: %s"
                      (error-message-string err))))))

(defun my-codex--after-connect (conn)
  "Learn every session from the new connection CONN; bring open buffers up to date."
  (jsonrpc-async-request
   conn :codex/daemon/status (make-hash-table)
   :success-fn (lambda (status) (setf (my-codex--daemon conn) status))
   :error-fn (lambda (_) (setf (my-codex--daemon conn) 'standalone))
   :timeout my-codex-request-timeout)
  (my-codex--reload)
  (dolist (buf (my-codex--session-buffers))
    (with-current-buffer buf (my-codex--resync))))

(defun my-codex--reload ()
  "Ask the sidecar for every session, without waiting; then forget older news."
  (my-codex--async "codex/session/list" (list :all t)
                   (lambda (result)
                     ;; What an earlier answer said no longer holds (sessions
                     ;; forgotten elsewhere are gone from this one).
                     (clrhash my-codex--sessions)
                     (seq-doseq (session (plist-get result :sessions))
                       (my-codex--remember session))
                     (setq my-codex--sessions-loaded t)
                     (my-codex--schedule-views))))

(defun my-codex--dispatch-request (_conn method _params)
  "Refuse the sidecar's request METHOD: the sidecar sends none."
  (jsonrpc-error :code -32601 :message (format "my-codex does not handle %s" method)))

(defun my-codex--dispatch-notification (_conn method params)
  "Handle the notification METHOD with PARAMS, recording any error."
  (condition-case err
      (my-codex-handle-notification method params)
    (error
     (push (list method err) my-codex--handler-errors)
     (message "my-codex: error handling %s: %s" method (error-message-string err)))))

(defun my-codex--call (conn method params timeout)
  "Send METHOD with PARAMS on CONN and wait at most TIMEOUT seconds for the answer.
Return (result . RESULT) or (error . ERROR), ERROR being a JSON-RPC
error plist.  Unlike `jsonrpc-request', this never leaves the
process filter non-locally, so notifications that arrive in the same
read as the answer are handled at once rather than on the next read.
After half a second the echo area says what Emacs waits for."
  (let ((answer nil)
        (quit t))
    (jsonrpc-async-request
     conn (intern method) (or params (make-hash-table))
     :success-fn (lambda (result) (setq answer (cons 'result result)))
     :error-fn (lambda (error) (setq answer (cons 'error error)))
     :timeout timeout
     :timeout-fn (lambda () (setq answer (list 'error :code 'timeout))))
    (unwind-protect
        (progn
          (my-codex--wait (format "waiting for %s" (my-codex--method-words method))
                          (lambda () answer))
          (setq quit nil))
      (when quit
        (message "Stopped waiting for codex-sessions to answer %s" method)))
    answer))

(defun my-codex--method-words (method)
  "Return METHOD without its `codex/session/' prefix, for messages."
  (string-remove-prefix "codex/session/" method))

(defun my-codex--error-text (error method timeout)
  "Return a sentence for ERROR, the JSON-RPC error answering METHOD.
TIMEOUT is how long the request was allowed to take.  Files that
the error's data names are added when the message does not name
them."
  (let* ((code (plist-get error :code))
         (text (plist-get error :message))
         (data (plist-get error :data))
         (files (and (listp data) (append (plist-get data :files) nil)))
         (unnamed (seq-remove (lambda (f) (and (stringp text) (string-search f text))) files)))
    (cond ((eql code -1)
           "The codex-sessions sidecar exited; it restarts on next use (see M-x my-codex-show-stderr)")
          ((eq code 'timeout)
           (format "codex-sessions did not answer %s within %s seconds" method timeout))
          ((and (stringp text) (not (string-empty-p text)))
           (if unnamed (format "%s (files: %s)" text (string-join unnamed ", ")) text))
          (t (format "codex-sessions failed: %S" error)))))

(defun my-codex--request (method params &optional timeout)
  "Send METHOD with PARAMS to the sidecar and return its result.
Wait at most TIMEOUT seconds, by default `my-codex-request-timeout'.
Any failure becomes a `user-error' with the sidecar's message.  Only
for commands whose result the user waits for."
  (let* ((timeout (or timeout my-codex-request-timeout))
         (answer (my-codex--call (my-codex--ensure-connection) method params timeout)))
    (if (eq (car answer) 'result)
        (cdr answer)
      (user-error "%s" (my-codex--error-text (cdr answer) method timeout)))))

(defun my-codex--async (method params on-result &optional on-error)
  "Send METHOD with PARAMS without waiting; call ON-RESULT with its result.
The sidecar is started, without waiting, when none runs.  Failures
call ON-ERROR with a sentence, or are shown in the echo area."
  (let ((fail (lambda (text)
                (if on-error (funcall on-error text)
                  (message "codex-sessions: %s" text)))))
    (condition-case err
        (my-codex--connect
         (lambda (conn)
           (jsonrpc-async-request
            conn (intern method) (or params (make-hash-table))
            :success-fn on-result
            :error-fn (lambda (error)
                        (funcall fail (my-codex--error-text error method
                                                            my-codex-request-timeout)))
            :timeout my-codex-request-timeout
            :timeout-fn (lambda ()
                          (funcall fail (format "no answer to %s in time" method))))))
      (user-error (funcall fail (error-message-string err))))))

;;;###autoload
(defun my-codex-shutdown ()
  "Close this Emacs's connection to codex-sessions.
Under the daemon (the default) the sessions go on without Emacs;
a standalone sidecar (`serve --standalone') stops every Codex it
ran.  Every record is kept."
  (interactive)
  (when-let ((conn my-codex--connection))
    (let ((my-codex--shutting-down t))
      (when (jsonrpc-running-p conn)
        (ignore-errors (my-codex--call conn "shutdown" nil 15))
        (ignore-errors (jsonrpc-notify conn :exit nil))
        (with-timeout (5 nil)
          (while (jsonrpc-running-p conn)
            (accept-process-output nil 0.05))))
      (ignore-errors (jsonrpc-shutdown conn))
      (setq my-codex--connection nil)))
  (force-mode-line-update t))

;;;###autoload
(defun my-codex-restart-sidecar ()
  "Close the connection to codex-sessions and open a new one.
Under the daemon, this restarts Emacs's relay only; the sessions go on."
  (interactive)
  (my-codex-shutdown)
  (my-codex--ensure-connection)
  (message "codex-sessions reconnected"))

;;;###autoload
(defun my-codex-stop-daemon ()
  "Stop the codex-sessions daemon, and with it every Codex; keep every record.
Sessions come back `interrupted' and resume when you send them a
prompt.  Interactively, ask first when turns are under way."
  (interactive)
  (let ((active (my-codex--active-sessions)))
    (when (or (not (called-interactively-p 'any))
              (yes-or-no-p
               (if active
                   (format "%s under way (%s); stop them and the daemon? "
                           (my-codex--count active "Codex turn")
                           (mapconcat #'my-codex--label active ", "))
                 "Stop the codex-sessions daemon? ")))
      (when (my-codex--standalone-p)
        (user-error "This Emacs runs a standalone sidecar (serve --standalone): use M-x my-codex-shutdown"))
      (my-codex--request "codex/daemon/stop" nil)
      (my-codex-shutdown)
      (message "codex-sessions: the daemon stops; sessions resume on your next prompt"))))

;;;###autoload
(defun my-codex-daemon-status ()
  "Show the codex-sessions daemon's pid, socket, log, clients and sessions."
  (interactive)
  (let ((status (my-codex--request "codex/daemon/status" nil)))
    (with-current-buffer (get-buffer-create "*codex daemon*")
      (let ((inhibit-read-only t))
        (erase-buffer)
        (cl-loop for (key value) on status by #'cddr
                 do (insert (format "%-16s %s\n" (substring (symbol-name key) 1)
                                    (if (stringp value) value (format "%S" value)))))
        (when-let ((log (plist-get status :log)))
          (insert "\n")
          (insert-text-button "Open the daemon's log"
                              'action (lambda (_) (find-file-other-window log))
                              'follow-link t)
          (insert "\n")))
      (special-mode)
      (goto-char (point-min))
      (display-buffer (current-buffer)))
    status))

(defun my-codex--kill-emacs-query ()
  "Say what becomes of Codex work under way as Emacs exits; non-nil: exit.
Under the daemon they go on, and the user may stop them instead;
a standalone sidecar interrupts them, so the user is asked."
  (let ((active (and (my-codex--live-connection) (my-codex--active-sessions))))
    (if (null active)
        t
      (let ((what (format "%s under way (%s)" (my-codex--count active "Codex turn")
                          (mapconcat #'my-codex--label active ", "))))
        (if (my-codex--standalone-p)
            (yes-or-no-p (format "%s will be interrupted; exit anyway? " what))
          (pcase (car (read-multiple-choice
                       (format "%s will go on in the background after Emacs exits." what)
                       '((?y "exit" "Exit; the turns go on (later: M-x my-codex-stop-daemon or `codex-sessions daemon stop')")
                         (?k "stop them, then exit" "Stop these sessions' Codex, then exit")
                         (?n "stay" "Do not exit"))))
            (?y (message "Codex turns go on in the background; M-x my-codex-stop-daemon stops them")
                t)
            (?k (dolist (session active)
                  (ignore-errors
                    (my-codex--request "codex/session/kill" (my-codex--ref session))))
                t)
            (_ nil)))))))

(defun my-codex--kill-emacs ()
  "Close the connection when Emacs exits."
  (ignore-errors (my-codex-shutdown)))

(add-hook 'kill-emacs-query-functions #'my-codex--kill-emacs-query)
(add-hook 'kill-emacs-hook #'my-codex--kill-emacs)

;;;###autoload
(defun my-codex-show-events ()
  "Show the buffer of protocol traffic with the sidecar."
  (interactive)
  (let ((conn (or my-codex--connection (my-codex--connect))))
    (display-buffer (jsonrpc-events-buffer conn))))

;;;###autoload
(defun my-codex-show-stderr ()
  "Show the standard error of `codex-sessions serve'."
  (interactive)
  (let ((buf (or (and my-codex--connection (jsonrpc-stderr-buffer my-codex--connection))
                 (get-buffer " *my-codex stderr*"))))
    (unless (buffer-live-p buf)
      (user-error "The sidecar has not been started in this Emacs"))
    (display-buffer buf)))

;;;; Sessions, projects and names

(defvar-local my-codex--buffer-project nil
  "The project root of a buffer that is about a session, such as its diff.
Such a buffer may live in the session's own work tree, which
project.el would take for a project of its own.")

(defun my-codex--project ()
  "Return the current project's root, or `default-directory', expanded."
  (expand-file-name
   (or my-codex--buffer-project
       (if-let ((project (project-current)))
           (project-root project)
         default-directory))))

(defun my-codex--project-setting (symbol)
  "Return the value of the option SYMBOL for the current project.
A value local to the current buffer (as .dir-locals.el sets it in
the project's files) wins; elsewhere, such as in a session buffer
or the list, the project's .dir-locals.el is read (its values that
are safe), else the global value is returned."
  (if (local-variable-p symbol)
      (symbol-value symbol)
    (let ((root (file-name-as-directory (my-codex--project))))
      (with-temp-buffer
        (setq default-directory root)
        (let ((enable-local-variables (and enable-local-variables :safe)))
          (ignore-errors (hack-dir-local-variables-non-file-buffer)))
        (symbol-value symbol)))))

(defun my-codex--root-key (directory)
  "Return DIRECTORY as the sidecar writes project roots: true name, no final slash."
  (directory-file-name (file-truename (expand-file-name directory))))

(defun my-codex--in-project-p (session root)
  "Return non-nil when SESSION belongs to the project ROOT, a `my-codex--root-key'."
  (equal (plist-get (plist-get session :project) :root) root))

(defun my-codex--remember (session)
  "Record SESSION, the sidecar's word on it, and return the newest record.
An answer to a request can arrive after notifications that are newer
than it; a SESSION older than the one recorded is ignored."
  (let* ((id (plist-get session :id))
         (old (and id (gethash id my-codex--sessions))))
    (if (and old (string< (or (plist-get session :updatedAt) "")
                          (or (plist-get old :updatedAt) "")))
        old
      (my-codex--record session))))

(defun my-codex--record (session)
  "Record SESSION, rename its buffer if needed, and return SESSION."
  (when session
    (puthash (plist-get session :id) session my-codex--sessions)
    (when-let ((buf (my-codex--buffer-of (plist-get session :id))))
      (with-current-buffer buf (my-codex--follow-name session)))
    (my-codex--update-tick)
    (my-codex--schedule-views))
  session)

(defun my-codex--buffer-of (id)
  "Return the live buffer showing the session with ID, or nil."
  (let ((buf (gethash id my-codex--buffers)))
    (if (and (buffer-live-p buf)
             (equal (buffer-local-value 'my-codex--session-id buf) id))
        buf
      (remhash id my-codex--buffers)
      nil)))

(defun my-codex--session-buffers ()
  "Return the live session buffers."
  (let (found)
    (maphash (lambda (id _)
               (when-let ((buf (my-codex--buffer-of id))) (push buf found)))
             my-codex--buffers)
    found))

(defun my-codex--live-p (session)
  "Return non-nil when SESSION's Codex is up and this Emacs can drive it."
  (eq (plist-get session :live) t))

(defun my-codex--active-p (session)
  "Return non-nil when SESSION has a turn or a start under way."
  (member (plist-get session :status) my-codex--active-statuses))

(defun my-codex--turn-running-p (session)
  "Return non-nil when SESSION has a turn in progress (running or waiting)."
  (member (plist-get session :status) '("running" "waiting")))

(defun my-codex--tree (session)
  "Return SESSION's own work tree plist (path, branch, base, merged), or nil."
  (let ((tree (plist-get session :worktree)))
    (and (listp tree) tree)))

(defun my-codex--unmerged-p (session)
  "Return non-nil when SESSION has a work tree of its own not merged yet."
  (when-let ((tree (my-codex--tree session)))
    (not (eq (plist-get tree :merged) t))))

(defun my-codex--listed-p (session)
  "Return non-nil when the list is to show SESSION while hiding stopped ones.
That is any session but a stopped one, and a stopped one that still
has a work tree to merge or discard."
  (or (not (equal (plist-get session :status) "stopped"))
      (my-codex--unmerged-p session)))

(defun my-codex--workdir (session)
  "Return where SESSION's Codex works: its own work tree, else the project."
  (let ((path (plist-get (my-codex--tree session) :path)))
    (if (and path (file-directory-p path))
        path
      (plist-get (plist-get session :project) :root))))

(defun my-codex--sort (sessions)
  "Return SESSIONS in the sidecar's order: by `rank', then most recently updated."
  (sort (copy-sequence sessions)
        (lambda (a b)
          (let ((ra (or (plist-get a :rank) 5)) (rb (or (plist-get b :rank) 5)))
            (if (/= ra rb) (< ra rb)
              (string> (or (plist-get a :updatedAt) "") (or (plist-get b :updatedAt) "")))))))

(defun my-codex--cached (&optional root predicate)
  "Return the known sessions of the project ROOT (nil: all), in list order.
PREDICATE, when given, filters them."
  (let (found)
    (maphash (lambda (_ session)
               (when (and (or (null root) (my-codex--in-project-p session root))
                          (or (null predicate) (funcall predicate session)))
                 (push session found)))
             my-codex--sessions)
    (my-codex--sort found)))

(defun my-codex--active-sessions ()
  "Return the sessions this Emacs can drive that have a turn under way."
  (my-codex--cached nil (lambda (s) (and (my-codex--live-p s) (my-codex--active-p s)))))

(defconst my-codex--numbered-count 10
  "How many of a project's sessions the list numbers, for numbered jumps.")

(defun my-codex--numbered (root)
  "Return the first sessions of the project ROOT, in the list's order.
These are numbered 1 to `my-codex--numbered-count' in the list, and
`my-codex-switch-to-session-1' ... `my-codex-switch-to-session-0'
jump to them."
  (seq-take (my-codex--cached root #'my-codex--listed-p) my-codex--numbered-count))

(defun my-codex--numbers ()
  "Return a table of session id to its number in its project's list."
  (let ((numbers (make-hash-table :test #'equal))
        (roots (make-hash-table :test #'equal)))
    (maphash (lambda (_ s) (puthash (plist-get (plist-get s :project) :root) t roots))
             my-codex--sessions)
    (maphash (lambda (root _)
               (let ((n 0))
                 (dolist (session (my-codex--numbered root))
                   (puthash (plist-get session :id) (cl-incf n) numbers))))
             roots)
    numbers))

(defun my-codex--tokens (n)
  "Return the token count N in a few characters: 950, 12k, 3.4M."
  (cond ((not (numberp n)) "")
        ((< n 1000) (format "%d" n))
        ((< n 10000) (format "%.1fk" (/ n 1000.0)))
        ((< n 1000000) (format "%dk" (round n 1000)))
        (t (format "%.1fM" (/ n 1000000.0)))))

(defun my-codex--usage (session)
  "Return SESSION's token usage as IN/OUT, or \"\" before any."
  (let* ((usage (plist-get session :usage))
         (in (plist-get usage :inputTokens))
         (out (plist-get usage :outputTokens)))
    (if (and (numberp in) (numberp out) (> (+ in out) 0))
        (format "%s/%s" (my-codex--tokens in) (my-codex--tokens out))
      "")))

(defun my-codex--model (session)
  "Return SESSION's model and effort as chosen, or \"\" for Codex's default."
  (let ((model (plist-get session :model))
        (effort (plist-get session :effort)))
    (string-join (delq nil (list (and (stringp model) model) (and (stringp effort) effort)))
                 " ")))

(defun my-codex--load-sessions ()
  "Make sure the sessions are known, waiting for the sidecar if they are not yet."
  (unless (and my-codex--sessions-loaded (my-codex--live-connection))
    (my-codex--ensure-connection)
    (my-codex--wait "listing sessions" (lambda () my-codex--sessions-loaded))))

(defun my-codex--list (&optional project all)
  "Ask the sidecar for the sessions of PROJECT (nil: every project); return a list.
With ALL, include stopped sessions.  This waits for the answer."
  (let ((result (my-codex--request "codex/session/list"
                                   (list :project project
                                         :all (if all t :json-false)))))
    (mapcar #'my-codex--remember (append (plist-get result :sessions) nil))))

(defun my-codex--get (session)
  "Return the sidecar's current plist for SESSION, a plist or a name."
  (my-codex--remember
   (plist-get (my-codex--request "codex/session/get" (my-codex--ref session))
              :session)))

(defun my-codex--ref (session)
  "Return the session reference params for SESSION, a plist or a name."
  (if (stringp session)
      (list :project (my-codex--project) :name session)
    (list :id (plist-get session :id))))

(defun my-codex--current-session ()
  "Return the session of the current buffer or list line, or nil."
  (cond ((and (derived-mode-p 'my-codex-session-mode) my-codex--session-id)
         (gethash my-codex--session-id my-codex--sessions))
        ((derived-mode-p 'my-codex-list-mode)
         (when-let ((id (tabulated-list-get-id)))
           (gethash id my-codex--sessions)))
        ((derived-mode-p 'my-codex-pending-mode)
         (when-let ((id (tabulated-list-get-id)))
           (gethash (car id) my-codex--sessions)))
        ((and (derived-mode-p 'my-codex-diff-mode) my-codex--diff-session-id)
         (gethash my-codex--diff-session-id my-codex--sessions))
        ((and (derived-mode-p 'my-codex-review-mode 'my-codex-prompt-edit-mode) my-codex--review)
         (gethash (car my-codex--review) my-codex--sessions))))

(defun my-codex--named (name)
  "Return the known session NAME of the current project, a live one first, or nil."
  (let ((root (my-codex--root-key (my-codex--project))))
    (seq-find (lambda (s) (equal (plist-get s :name) name))
              (append (my-codex--cached root #'my-codex--live-p)
                      (my-codex--cached root)))))

(defun my-codex--session (session)
  "Return SESSION as a plist.
SESSION may be a plist, a name in the current project, or nil for
the current buffer's session or else the project's default one."
  (cond ((and session (listp session)) session)
        ((stringp session) (or (and (my-codex--live-connection) (my-codex--named session))
                               (my-codex--get session)))
        ((my-codex--current-session))
        (t (my-codex--session my-codex-default-session-name))))

(defun my-codex--label (session)
  "Return a short label for SESSION: its project and name."
  (format "%s/%s" (plist-get (plist-get session :project) :name)
          (plist-get session :name)))

(defun my-codex--count (things word)
  "Return the number of THINGS followed by WORD, in the plural when needed."
  (let ((n (if (integerp things) things (length things))))
    (format "%d %s%s" n word (if (= n 1) "" "s"))))

(defun my-codex--read-session (prompt &optional all predicate ask)
  "Read one of the project's sessions with PROMPT and return its plist.
With ALL, offer stopped sessions too.  PREDICATE filters the
candidates.  In a session buffer or on a list line, return that
session without asking, unless ASK.  The candidates come from what
Emacs knows, so this does not wait for the sidecar once it runs."
  (or (and (not ask) (my-codex--current-session))
      (progn
        (my-codex--load-sessions)
        (let* ((root (my-codex--root-key (my-codex--project)))
               (sessions (my-codex--cached
                          root (lambda (s)
                                 (and (or all (not (equal (plist-get s :status) "stopped")))
                                      (or (null predicate) (funcall predicate s))))))
               (table (my-codex--candidates sessions)))
          (unless table
            (user-error "No Codex sessions to choose in %s" (abbreviate-file-name root)))
          (let ((default (or (car (assoc my-codex-default-session-name table))
                             (caar table))))
            (cdr (assoc (completing-read (format-prompt (string-trim-right prompt ":? *") default)
                                         (my-codex--completion-table table)
                                         nil t nil 'my-codex--name-history default)
                        table)))))))

(defun my-codex--candidates (sessions)
  "Return an alist of unique completion strings to SESSIONS."
  (let (table)
    (dolist (session sessions)
      (let ((name (plist-get session :name)))
        (when (assoc name table)
          (setq name (format "%s <%s %s>" name (plist-get session :status)
                             (substring (or (plist-get session :createdAt) "") 0 16))))
        (push (cons name session) table)))
    (nreverse table)))

(defun my-codex--completion-table (table)
  "Return a completion table over TABLE, in its order, annotated with statuses."
  (my-codex--completion-table-in-order
   table
   (lambda (session)
     (format "  %s  %s" (plist-get session :status)
             (or (plist-get session :headline) (plist-get session :title) "")))
   'my-codex-session))

(defun my-codex--read-name (prompt &optional default)
  "Read a session name with PROMPT, offering the project's names; DEFAULT if empty."
  (my-codex--load-sessions)
  (let* ((names (delete-dups
                 (mapcar (lambda (s) (plist-get s :name))
                         (my-codex--cached (my-codex--root-key (my-codex--project))))))
         (default (or default my-codex-default-session-name))
         (name (completing-read (format-prompt prompt default) names nil nil nil
                                'my-codex--name-history default)))
    (if (string-empty-p name) default name)))

(defun my-codex--first-line (text)
  "Return the first line of TEXT, at most 120 characters."
  (truncate-string-to-width (car (split-string (or text "") "\n")) 120 nil nil "..."))

;;;; Time

(defun my-codex--time (iso)
  "Return ISO, an ISO 8601 string, as a Lisp time, or nil."
  (and (stringp iso) (ignore-errors (parse-iso8601-time-string iso))))

(defun my-codex--duration (seconds)
  "Return SECONDS as a short duration such as 1m05s."
  (let ((s (max 0 (truncate seconds))))
    (cond ((< s 60) (format "%ds" s))
          ((< s 3600) (format "%dm%02ds" (/ s 60) (% s 60)))
          (t (format "%dh%02dm" (/ s 3600) (% (/ s 60) 60))))))

(defun my-codex--elapsed (session)
  "Return the elapsed time of SESSION's current or last turn, or \"\".
It runs from the sidecar's `turnStartedAt' to now, or to `finishedAt'
once the turn ended.  An active session whose last turn ended, such
as one that waits for you to review a rewritten prompt, has no turn
under way yet: nothing is shown."
  (let* ((start (my-codex--time (plist-get session :turnStartedAt)))
         (finished (my-codex--time (plist-get session :finishedAt)))
         (end (cond ((not (my-codex--active-p session)) finished)
                    ((and start finished (not (time-less-p finished start))) nil)
                    (t (current-time)))))
    (if (and start end (time-less-p start (time-add end 1)))
        (my-codex--duration (float-time (time-subtract end start)))
      "")))

(defun my-codex--update-tick ()
  "Start the redisplay timer if some session is active, else stop it."
  (let ((active nil))
    (maphash (lambda (_ s) (when (my-codex--active-p s) (setq active t)))
             my-codex--sessions)
    (cond ((and active (not my-codex--tick-timer))
           (setq my-codex--tick-timer (run-with-timer 1 1 #'my-codex--tick)))
          ((and (not active) my-codex--tick-timer)
           (cancel-timer my-codex--tick-timer)
           (setq my-codex--tick-timer nil)))))

(defun my-codex--tick ()
  "Redraw elapsed times: mode lines, and the session lists in view."
  (force-mode-line-update t)
  (dolist (buf (my-codex--view-buffers 'my-codex-list-mode))
    (when (get-buffer-window buf 'visible)
      (with-current-buffer buf (my-codex--list-render)))))

;;;; Mode line

(defvar my-codex-mode-line-map
  (let ((map (make-sparse-keymap)))
    (define-key map [mode-line mouse-1] #'my-codex-pending)
    (define-key map [mode-line mouse-3] #'my-codex-list-sessions)
    map)
  "Keymap of the Codex counts in the mode line.")

(defun my-codex-mode-line ()
  "Return the global mode-line text: counts of running and waiting sessions.
Clicking it shows what waits on you; see `my-codex-mode-line-map'.
Nothing is counted while the sidecar is not running."
  (let ((running 0) (waiting 0))
    (when (my-codex--live-connection)
      (maphash (lambda (_ s)
                 (pcase (plist-get s :status)
                   ("running" (cl-incf running))
                   ("waiting" (cl-incf waiting))))
               my-codex--sessions))
    (if (and (zerop running) (zerop waiting))
        ""
      (concat " "
              (propertize
               (concat "Codex["
                       (if (> running 0) (format "%d running" running) "")
                       (if (and (> running 0) (> waiting 0)) " " "")
                       (if (> waiting 0)
                           (propertize (format "%d waiting" waiting)
                                       'face 'my-codex-approval-face)
                         "")
                       "]")
               'local-map my-codex-mode-line-map
               'mouse-face 'mode-line-highlight
               'help-echo "mouse-1: what waits on you, mouse-3: the session list")))))

(defconst my-codex--mode-line-construct '(:eval (my-codex-mode-line))
  "The mode-line construct added to `global-mode-string'.")

(defun my-codex--install-mode-line ()
  "Add the session counts to the global mode line."
  (unless (member my-codex--mode-line-construct global-mode-string)
    ;; A list that starts with a symbol would be a conditional construct,
    ;; so the list starts with a string.
    (setq global-mode-string
          (append (cond ((null global-mode-string) (list ""))
                        ((listp global-mode-string) global-mode-string)
                        (t (list "" global-mode-string)))
                  (list my-codex--mode-line-construct)))))

;;;; Views: the list and the pending buffers follow the sessions

(defun my-codex--connection-note ()
  "Return a view's note on the connection: nothing once sessions are known."
  (cond (my-codex--sessions-loaded "")
        (my-codex--connection " connecting...")
        (t " not connected")))

(defun my-codex--view-buffers (mode)
  "Return the live buffers in major MODE."
  (seq-filter (lambda (buf) (eq (buffer-local-value 'major-mode buf) mode))
              (buffer-list)))

(defun my-codex--schedule-views ()
  "Redraw the list and pending buffers shortly, once for a burst of news."
  (unless my-codex--views-timer
    (setq my-codex--views-timer (run-with-timer 0.1 nil #'my-codex--redraw-views)))
  (force-mode-line-update t))

(defun my-codex--redraw-views ()
  "Redraw every list and pending buffer from what Emacs knows."
  (setq my-codex--views-timer nil)
  (dolist (buf (my-codex--view-buffers 'my-codex-list-mode))
    (with-current-buffer buf (my-codex--list-render)))
  (dolist (buf (my-codex--view-buffers 'my-codex-pending-mode))
    (with-current-buffer buf (my-codex--pending-render))))

;;;; Notifications

(cl-defgeneric my-codex-handle-notification (method params)
  "Handle the sidecar's notification METHOD, a symbol, with PARAMS, a plist.
Unknown notifications are ignored."
  (:method (_method _params) nil))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/changed)) params)
  "Record the changed session in PARAMS; its buffer, lists and mode line follow."
  (my-codex--remember (plist-get params :session)))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/output)) params)
  "Insert the transcript items and streamed pieces in PARAMS."
  (when-let ((buf (my-codex--buffer-of (plist-get params :id))))
    (with-current-buffer buf
      (my-codex--insert-items (plist-get params :items)))))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/request)) params)
  "Announce the request in PARAMS when its session is not in view.
A prompt rewritten by learn mode opens for review when its session
is in view, and is announced otherwise."
  (let* ((id (plist-get params :id))
         (request (plist-get params :request))
         (session (gethash id my-codex--sessions))
         (buf (my-codex--buffer-of id))
         (shown (and buf (get-buffer-window buf 'visible))))
    (my-codex--schedule-views)
    (cond ((and shown (my-codex--prompt-review-p request))
           ;; Out of the process filter: this may select a window.
           (run-at-time 0 nil #'my-codex--review-arrived id request))
          ((my-codex--prompt-review-p request)
           (message "Codex %s: learn mode rewrote your prompt; accept, edit or decline it (%s)"
                    (if session (my-codex--label session) id)
                    (substitute-command-keys "\\[my-codex-pending] lists what waits")))
          ((not shown)
           (message "Codex %s waits for approval: %s (%s)"
                    (if session (my-codex--label session) id)
                    (my-codex--request-text request)
                    (substitute-command-keys "\\[my-codex-pending] lists what waits"))))))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/overlap)) params)
  "Announce the overlap in PARAMS: one file changed twice, or out of scope."
  (let ((path (plist-get params :path))
        (labels (mapcar #'my-codex--label-of (append (plist-get params :sessions) nil))))
    (my-codex--schedule-views)
    (if (equal (plist-get params :reason) "outOfScope")
        (message "Codex %s wrote %s, outside its write scope" (string-join labels ", ") path)
      (message "Codex overlap: %s changed %s (%s lists it)"
               (string-join labels " and ") path
               (substitute-command-keys "\\[my-codex-list-sessions]")))))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/finished)) params)
  "Insert the report in PARAMS; notify when the session is in the background."
  (let* ((session (my-codex--remember (plist-get params :session)))
         (text (plist-get params :text))
         (buf (my-codex--buffer-of (plist-get session :id))))
    (when buf
      (with-current-buffer buf (my-codex--insert-report text)))
    (unless (and buf (get-buffer-window buf 'visible))
      (when my-codex-notify-function
        (funcall my-codex-notify-function session text)))))

(cl-defmethod my-codex-handle-notification ((_m (eql 'window/showMessage)) params)
  "Show the sidecar's message in PARAMS: errors and warnings in *Warnings*."
  (let ((text (plist-get params :message)))
    (pcase (plist-get params :type)
      (1 (display-warning 'my-codex text :error))
      (2 (display-warning 'my-codex text :warning))
      (_ (message "%s" text)))))

(defun my-codex-notify-echo-area (session text)
  "Show the first lines of TEXT, the report of SESSION, in the echo area."
  (message "Codex %s finished: %s" (my-codex--label session)
           (string-join (seq-take (cdr (split-string (or text "") "\n" t)) 2) "; ")))

(defun my-codex--request-text (request)
  "Return what REQUEST, a pending approval, is about: its command, files or reason.
For a prompt rewritten by learn mode, the first line of the prompt."
  (or (and (my-codex--prompt-review-p request)
           (concat "rewrite of: " (my-codex--first-line (plist-get request :original))))
      (plist-get request :command)
      (let ((paths (mapcar (lambda (c) (plist-get c :path))
                           (append (plist-get request :changes) nil))))
        (and paths (string-join paths ", ")))
      (plist-get request :reason)
      (plist-get request :kind)))

;;;; Session buffers

(defvar my-codex-session-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-c C-c") #'my-codex-send)
    (define-key map (kbd "RET") #'my-codex-return)
    (define-key map (kbd "TAB") #'my-codex-toggle-output)
    (define-key map (kbd "M-p") #'my-codex-previous-input)
    (define-key map (kbd "M-n") #'my-codex-next-input)
    (define-key map (kbd "C-c C-p") #'my-codex-previous-prompt)
    (define-key map (kbd "C-c C-n") #'my-codex-next-prompt)
    (define-key map (kbd "C-c C-k") #'my-codex-cancel)
    (define-key map (kbd "C-c C-a") #'my-codex-accept)
    (define-key map (kbd "C-c C-s") #'my-codex-accept-for-session)
    (define-key map (kbd "C-c C-d") #'my-codex-decline)
    (define-key map (kbd "C-c C-e") #'my-codex-edit-prompt)
    (define-key map (kbd "C-c C-r") #'my-codex-session-report)
    (define-key map (kbd "C-c C-l") #'my-codex-list-sessions)
    (define-key map (kbd "C-c C-w") #'my-codex-rename-session)
    (define-key map (kbd "C-c C-q") #'my-codex-kill-session)
    (define-key map (kbd "C-c C-f") #'my-codex-fork-here)
    (define-key map (kbd "C-c C-v") #'my-codex-diff)
    map)
  "Keymap of Codex session buffers.")

(define-derived-mode my-codex-session-mode text-mode "Codex"
  "Major mode of a Codex session buffer.
The conversation streams in above the prompt line; type the next
prompt below it and send it with \\[my-codex-send] or RET.  As in
comint, \\[my-codex-previous-input] and \\[my-codex-next-input] bring back earlier prompts and
\\[my-codex-previous-prompt] and \\[my-codex-next-prompt] move between them in the transcript.

\\{my-codex-session-mode-map}"
  (setq-local font-lock-defaults nil)
  (setq-local header-line-format '(:eval (my-codex--header-line)))
  (setq-local truncate-lines nil)
  (setq-local word-wrap t))

(defun my-codex--header-line ()
  "Return the header line of the current session buffer."
  (let ((session (gethash my-codex--session-id my-codex--sessions)))
    (if (not session)
        (if (my-codex--live-connection) " Codex" " Codex  connecting...")
      (my-codex--header-text session))))

(defun my-codex--header-text (session)
  "Return the header line text of SESSION."
  (let* ((status (plist-get session :status))
         (reviews (seq-count #'my-codex--prompt-review-p (plist-get session :pending)))
         (pending (- (length (plist-get session :pending)) reviews))
         (elapsed (my-codex--elapsed session))
         (retry (plist-get session :retry))
         (last-turn (plist-get (plist-get session :lastTurn) :status))
         (storage (plist-get session :storageError)))
    (concat
     " " (my-codex--label session)
     "  " (propertize status 'face (my-codex--status-face status))
     (if (string-empty-p elapsed) "" (concat "  " elapsed))
     (format "  turns %d" (or (plist-get session :turns) 0))
     ;; What waits on the user comes first: a narrow window cuts the rest.
     (if (> pending 0)
         (propertize (format "  %d approval%s pending: C-c C-a accept, C-c C-s for session, C-c C-d decline"
                             pending (if (= pending 1) "" "s"))
                     'face 'my-codex-approval-face)
       "")
     (if (> reviews 0)
         (propertize "  prompt rewritten: C-c C-a send the rewrite, C-c C-e edit it, C-c C-d send yours"
                     'face 'my-codex-approval-face)
       "")
     (let ((model (my-codex--model session)))
       (if (string-empty-p model) "" (concat "  " model)))
     (let ((usage (my-codex--usage session)))
       (if (string-empty-p usage) "" (concat "  tokens " usage)))
     (if-let ((tree (my-codex--tree session)))
         (format "  tree %s%s" (plist-get tree :branch)
                 (if (my-codex--unmerged-p session) "" " (merged)"))
       "")
     (let ((role (plist-get session :role)))
       (if (member role '("explorer" "verifier")) (concat "  " role) ""))
     (my-codex--notes-text session)
     (let ((overlaps (append (plist-get session :overlaps) nil)))
       (if overlaps
           (propertize (format "  %s" (my-codex--count overlaps "overlap"))
                       'face 'my-codex-approval-face
                       'help-echo (string-join overlaps "\n"))
         ""))
     (if (and retry (my-codex--active-p session))
         (propertize (format "  retrying (%s): %s" (or (plist-get retry :attempt) "?")
                             (my-codex--first-line (plist-get retry :message)))
                     'face 'my-codex-approval-face)
       "")
     (if (and (not (my-codex--active-p session))
              (member last-turn '("failed" "interrupted")))
         (propertize (format "  last turn %s" last-turn)
                     'face (if (equal last-turn "failed") 'my-codex-error-face
                             'my-codex-status-face))
       "")
     (if storage
         (propertize (concat "  not saved: " (my-codex--first-line storage))
                     'face 'my-codex-error-face)
       "")
     (if (my-codex--live-connection) ""
       (propertize "  not connected" 'face 'my-codex-error-face))
     (if-let ((error (and (equal status "failed") (plist-get session :error))))
         (propertize (concat "  " (my-codex--first-line error)) 'face 'my-codex-error-face)
       ""))))

(defun my-codex--notes-text (session)
  "Return the header's words on SESSION's notetaker and learn mode, or \"\".
`notes' while the notetaker notes each turn; `learn' with the gaps
still open while in learn mode; `learn ended: gaps resolved' once
learn mode ended by itself; `notes failed: WHY' while the notetaker
fails."
  (let* ((learn (plist-get session :learn))
         (learning (and (listp learn) (eq (plist-get learn :on) t)))
         (gaps (and learning (append (plist-get learn :openGaps) nil)))
         (error (plist-get session :notesError)))
    (concat
     (cond (learning
            (propertize (if gaps (format "  learn (%s)" (my-codex--count gaps "open gap")) "  learn")
                        'face 'success
                        'help-echo (if gaps (concat "Open gaps:\n" (string-join gaps "\n"))
                                     "Learn mode: prompts are rewritten for your review")))
           ((eq (plist-get session :notes) t) "  notes")
           (t ""))
     (if (and (listp learn) (equal (plist-get learn :endedBecause) "resolved"))
         (propertize "  learn ended: gaps resolved" 'face 'my-codex-status-face)
       "")
     (if (stringp error)
         (propertize (concat "  notes failed: " (my-codex--first-line error))
                     'face 'my-codex-error-face 'help-echo error)
       ""))))

(defun my-codex--status-face (status)
  "Return the face for STATUS."
  (pcase status
    ("waiting" 'my-codex-approval-face)
    ("failed" 'my-codex-error-face)
    ((or "running" "starting" "queued") 'success)
    (_ 'my-codex-status-face)))

(defun my-codex--reset (id)
  "Make the current buffer an empty view of the session with ID."
  (let ((inhibit-read-only t))
    (erase-buffer)
    (setq my-codex--session-id id
          my-codex--last-seq 0
          my-codex--streams nil
          my-codex--resyncing nil
          my-codex--resync-missed nil
          my-codex--prompts nil
          my-codex--turn 0
          my-codex--history-index nil)
    (insert (propertize "\n" 'read-only t 'front-sticky t 'rear-nonsticky t))
    (setq my-codex--output-end (copy-marker (1- (point)) t))
    (insert (propertize "--- prompt (C-c C-c or RET sends) ---\n"
                        'face 'my-codex-status-face
                        'read-only t 'front-sticky t 'rear-nonsticky t
                        'my-codex-separator t))
    (setq my-codex--prompt-start (copy-marker (point)))
    (setq buffer-undo-list nil)
    (set-buffer-modified-p nil)
    (puthash id (current-buffer) my-codex--buffers)))

(defun my-codex--follow-name (session)
  "Rename the current buffer to SESSION's `bufferName' if it changed.
A buffer that holds that name already is moved aside, not killed."
  (let ((name (plist-get session :bufferName)))
    (when (and name (not (equal name (buffer-name))))
      (when-let ((other (get-buffer name)))
        (with-current-buffer other
          (rename-buffer (generate-new-buffer-name name))))
      (rename-buffer name))))

(defun my-codex--make-room (name id)
  "Free the buffer name NAME for the session ID.
The buffer of another session that had this name (as when a fresh
conversation takes the name of an earlier one) takes that session's
new name."
  (when-let* ((other (get-buffer name))
              (other-id (buffer-local-value 'my-codex--session-id other)))
    (unless (equal other-id id)
      (let* ((session (or (ignore-errors
                            (my-codex--remember
                             (plist-get (my-codex--request "codex/session/get"
                                                           (list :id other-id))
                                        :session)))
                          (gethash other-id my-codex--sessions)))
             (new (plist-get session :bufferName)))
        (when (buffer-live-p other)
          (with-current-buffer other
            (when (equal (buffer-name) name)
              (rename-buffer (if (and new (not (equal new name))) new
                               (generate-new-buffer-name name))))))))))

(defun my-codex--open-buffer (session)
  "Return SESSION's buffer, created if needed; fill it in without waiting."
  (let* ((id (plist-get session :id))
         (name (plist-get session :bufferName))
         (buf (my-codex--buffer-of id)))
    (unless buf
      (my-codex--make-room name id)
      (setq buf (get-buffer-create name)))
    (with-current-buffer buf
      (unless (derived-mode-p 'my-codex-session-mode)
        (my-codex-session-mode))
      (unless (equal my-codex--session-id id)
        (when my-codex--session-id
          (remhash my-codex--session-id my-codex--buffers))
        (my-codex--reset id))
      (my-codex--follow-name session)
      (when-let ((root (plist-get (plist-get session :project) :root)))
        (when (file-directory-p root)
          (setq default-directory (file-name-as-directory root))))
      (my-codex--resync))
    buf))

(defun my-codex--resync ()
  "Fetch the transcript items after the last one shown, without waiting."
  (if my-codex--resyncing
      (setq my-codex--resync-missed t)
    (let ((buf (current-buffer))
          (limit 1000)
          (id my-codex--session-id))
      (setq my-codex--resyncing t
            my-codex--resync-missed nil)
      (my-codex--async
       "codex/session/transcript"
       (list :id id :after my-codex--last-seq :limit limit)
       (lambda (result)
         (when (buffer-live-p buf)
           (with-current-buffer buf
             (when (equal my-codex--session-id id)
               (setq my-codex--resyncing nil)
               (let ((items (plist-get result :items)))
                 (my-codex--insert-items items t)
                 (when (or (= (length items) limit) my-codex--resync-missed)
                   (my-codex--resync)))))))
       (lambda (text)
         (when (buffer-live-p buf)
           (with-current-buffer buf (setq my-codex--resyncing nil)))
         (message "codex-sessions: %s" text))))))

(defmacro my-codex--at (pos &rest body)
  "Run BODY at POS with read-only text writable; make its insertions read-only.
They also carry the number of the turn they belong to, for
\\[my-codex-fork-here]."
  (declare (indent 1) (debug t))
  (let ((start (make-symbol "start")))
    `(let ((inhibit-read-only t)
           (,start nil))
       (save-excursion
         (goto-char ,pos)
         (setq ,start (point))
         ,@body
         (add-text-properties ,start (point)
                              '(read-only t front-sticky t rear-nonsticky t))
         (when (> my-codex--turn 0)
           (put-text-property ,start (point) 'my-codex-turn my-codex--turn))))))

(defmacro my-codex--transcript-change (&rest body)
  "Run BODY, an edit of the transcript above the prompt, outside undo.
The prompt edits that undo remembers are moved along with the prompt,
and the buffer's modified flag is left alone."
  (declare (indent 0) (debug t))
  (let ((size (make-symbol "size")))
    `(let ((,size (buffer-size)))
       (prog1 (with-silent-modifications
                ,@body)
         (my-codex--shift-undo (- (buffer-size) ,size))))))

(defun my-codex--shift-undo (delta)
  "Move the positions recorded for undo by DELTA characters.
The records are changed in place: `undo' knows its own records by
identity (`undo-equiv-table'), and a copy would make the next undo
in a row undo the previous one instead of going further back."
  (unless (or (zerop delta) (eq buffer-undo-list t))
    (let ((tail buffer-undo-list)
          (pending-seen (not (consp pending-undo-list))))
      (while (consp tail)
        (when (eq tail pending-undo-list) (setq pending-seen t))
        (setcar tail (my-codex--shift-undo-entry (car tail) delta))
        (setq tail (cdr tail)))
      ;; An undo in a region works on a list of its own.
      (unless pending-seen
        (setq tail pending-undo-list)
        (while (consp tail)
          (setcar tail (my-codex--shift-undo-entry (car tail) delta))
          (setq tail (cdr tail)))))))

(defun my-codex--shift-undo-entry (entry delta)
  "Return the undo ENTRY with its positions moved by DELTA."
  (pcase entry
    ((pred integerp) (+ entry delta))
    (`(,(and beg (pred integerp)) . ,(and end (pred integerp)))
     (cons (+ beg delta) (+ end delta)))
    (`(,(and text (pred stringp)) . ,(and pos (pred integerp)))
     (cons text (if (< pos 0) (- pos delta) (+ pos delta))))
    (`(nil ,prop ,value ,(and beg (pred integerp)) . ,(and end (pred integerp)))
     (cons nil (cons prop (cons value (cons (+ beg delta) (+ end delta))))))
    (_ entry)))

(defun my-codex--insert-items (items &optional complete)
  "Insert ITEMS, transcript items and streamed pieces, in order.
An item that skips some seq numbers means items were missed: they
are fetched again, unless COMPLETE says ITEMS come from the
transcript itself, which then no longer holds the missing ones."
  (my-codex--transcript-change
    (seq-doseq (item items)
      (let ((seq (plist-get item :seq)))
        (cond ((null seq)
               (unless my-codex--resyncing (my-codex--insert-piece item)))
              ((<= seq my-codex--last-seq))
              ((or (= seq (1+ my-codex--last-seq)) complete)
               (when (> seq (1+ my-codex--last-seq))
                 (my-codex--at my-codex--output-end
                   (my-codex--line (format "[%d earlier transcript item(s) no longer kept]"
                                           (- seq my-codex--last-seq 1))
                                   'my-codex-status-face)))
               (my-codex--insert-item item)
               (setq my-codex--last-seq seq))
              (t (my-codex--resync)))))))

(defun my-codex--insert-piece (piece)
  "Append the streamed PIECE to the text of its item, creating it if new.
Streamed text ends with a newline of its own, so what follows it
starts on a line of its own."
  (let* ((item-id (plist-get piece :itemId))
         (command (equal (plist-get piece :kind) "commandDelta"))
         (text (or (plist-get piece :text) ""))
         (stream (cdr (assoc item-id my-codex--streams))))
    (unless stream
      (let ((start (marker-position my-codex--output-end)))
        (my-codex--at my-codex--output-end
          (if command
              (insert (propertize "$ (running)\n" 'face 'my-codex-command-face))
            (insert (propertize "Codex:\n" 'face 'my-codex-heading-face)))
          (insert "\n"))
        ;; The start moves on with text inserted just before it; the end,
        ;; before the closing newline, is moved by hand.
        (setq stream (cons (copy-marker start t)
                           (copy-marker (1- my-codex--output-end) nil)))
        (push (cons item-id stream) my-codex--streams)))
    (let ((end (cdr stream)))
      (my-codex--at end
        (insert (if command (propertize text 'face 'my-codex-output-face) text))
        (set-marker end (point))))))

(defun my-codex--count-turn (item)
  "Count the turn of ITEM: a prompt begins one; a fork's origin is its start."
  (pcase (plist-get item :kind)
    ("user" (unless (eq (plist-get item :steer) t)
              (cl-incf my-codex--turn)))
    ("note" (when-let ((turn (plist-get (plist-get item :forkedFrom) :turn)))
              (when (numberp turn) (setq my-codex--turn turn))))))

(defun my-codex--insert-item (item)
  "Insert the transcript ITEM, replacing the streamed text of the same item."
  (my-codex--count-turn item)
  (let* ((item-id (plist-get item :itemId))
         (stream (and item-id (cdr (assoc item-id my-codex--streams)))))
    (if (not stream)
        (my-codex--at my-codex--output-end (my-codex--render item))
      (setq my-codex--streams (assoc-delete-all item-id my-codex--streams))
      (let ((inhibit-read-only t))
        (delete-region (car stream) (1+ (cdr stream))))
      (my-codex--at (car stream) (my-codex--render item))
      (set-marker (car stream) nil)
      (set-marker (cdr stream) nil))))

(defun my-codex--close-streams ()
  "Forget the streams still open: their text stays as it was shown."
  (dolist (entry my-codex--streams)
    (set-marker (cadr entry) nil)
    (set-marker (cddr entry) nil))
  (setq my-codex--streams nil))

(defun my-codex--line (text &optional face)
  "Insert TEXT with FACE and end the line."
  (insert (if face (propertize text 'face face) text))
  (unless (string-suffix-p "\n" text) (insert "\n")))

(defun my-codex--render (item)
  "Insert the text of the transcript ITEM at point."
  (pcase (plist-get item :kind)
    ("user"
     (let ((text (or (plist-get item :text) "")))
       (push text my-codex--prompts)
       (insert "\n")
       (insert (propertize (concat "> " (replace-regexp-in-string "\n" "\n  " text))
                           'face 'my-codex-user-face
                           'my-codex-prompt t))
       (when (eq (plist-get item :steer) t)
         (insert (propertize "  (added to the running turn)" 'face 'my-codex-status-face)))
       (when (equal (plist-get item :via) "codexTui")
         (insert (propertize "  (typed in Codex's terminal UI)" 'face 'my-codex-status-face)))
       (insert "\n")))
    ("note" (my-codex--render-note item))
    ("agent"
     (my-codex--line "Codex:" 'my-codex-heading-face)
     (my-codex--line (or (plist-get item :text) "")))
    ("reasoning"
     (my-codex--line (concat "(thinking) " (or (plist-get item :text) ""))
                     'my-codex-reasoning-face))
    ("command" (my-codex--render-command item))
    ("fileChange" (my-codex--render-file-change item))
    ("request" (my-codex--render-request item))
    ("error"
     (if (eq (plist-get item :overlap) t)
         (my-codex--line (concat "Warning: " (or (plist-get item :text) ""))
                         'my-codex-approval-face)
       (my-codex--line (concat "Error: " (or (plist-get item :text) ""))
                       'my-codex-error-face)))
    ("status"
     ;; The header line shows the status; the transcript notes only the
     ;; ends of a session's Codex.
     (let ((status (plist-get item :status)))
       (when (member status '("stopped" "interrupted" "failed"))
         (my-codex--line (format "[session %s]" status) 'my-codex-status-face))))
    (kind (my-codex--line (format "[%s]" kind) 'my-codex-status-face))))

(defun my-codex--render-note (item)
  "Insert the sidecar's note ITEM; a fork's origin is a button to that turn."
  (let ((text (format "[%s]" (or (plist-get item :text) "")))
        (origin (plist-get item :forkedFrom)))
    (if (not origin)
        (my-codex--line text 'my-codex-status-face)
      (insert-text-button text
                          'action (lambda (_button)
                                    (my-codex--visit-turn (plist-get origin :id)
                                                          (plist-get origin :turn)))
                          'help-echo (format "Show turn %s of %s" (plist-get origin :turn)
                                             (plist-get origin :name))
                          'follow-link t)
      (insert "\n"))))

(defun my-codex--visit-turn (id turn)
  "Show the buffer of the session with ID at the start of its TURN."
  (let* ((session (or (gethash id my-codex--sessions)
                      (user-error "That session is no longer known")))
         (buf (my-codex-switch-session session)))
    (with-current-buffer buf
      (let ((start (text-property-any (point-min) (point-max) 'my-codex-turn turn)))
        (if start
            (goto-char start)
          (message "Turn %s of %s is not in its buffer yet" turn (my-codex--label session)))))))

(defun my-codex--render-command (item)
  "Insert the command ITEM: the command, its exit code and folded output."
  (let* ((output (string-trim-right (or (plist-get item :output) "")))
         (lines (if (string-empty-p output) 0
                  (1+ (cl-count ?\n output))))
         (exit (plist-get item :exitCode))
         (status (plist-get item :status))
         (folded (> lines my-codex-collapse-output-lines))
         (key (list 'output (plist-get item :seq))))
    (insert (propertize (concat "$ " (or (plist-get item :command) ""))
                        'face 'my-codex-command-face
                        'my-codex-fold key)
            (propertize (format "  [%s]" (cond (exit (format "exit %s" exit))
                                               (status status)
                                               (t "not run")))
                        'face (if (and exit (zerop exit)) 'success 'my-codex-error-face)
                        'my-codex-fold key)
            (propertize (if (zerop lines) "\n"
                          (format "  (%d line%s, TAB folds)\n" lines (if (= lines 1) "" "s")))
                        'face 'my-codex-status-face
                        'my-codex-fold key))
    (unless (zerop lines)
      (insert (propertize (concat output "\n")
                          'face 'my-codex-output-face
                          'my-codex-output key
                          'invisible folded)))))

(defun my-codex--render-file-change (item)
  "Insert the file change ITEM, one button per file.
A file opens in the session's own work tree when it has one."
  (let ((id my-codex--session-id))
    (my-codex--line "Files changed:" 'my-codex-heading-face)
    (seq-doseq (change (plist-get item :changes))
      (let ((path (plist-get change :path)))
        (insert (format "  %-6s " (or (plist-get change :kind) "")))
        (insert-text-button path
                            'action (lambda (_button)
                                      (find-file-other-window
                                       (expand-file-name
                                        path (my-codex--workdir (gethash id my-codex--sessions)))))
                            'help-echo "Open this file"
                            'follow-link t)
        (insert "\n")))))

(defun my-codex--render-request (item)
  "Insert the approval request ITEM, or the decision taken on it."
  (let ((request-id (plist-get item :requestId))
        (decision (plist-get item :decision))
        (review (equal (plist-get item :requestKind) "promptReview")))
    (cond
     (decision
      (let ((here (copy-marker (point) t)))
        ;; The buttons may end right here: the decision follows them.
        (my-codex--retire-request request-id decision)
        (goto-char here)
        (set-marker here nil)
        (my-codex--line (format "%s %s: %s" (if review "Prompt review" "Approval")
                                request-id decision)
                        'my-codex-status-face)))
     (review (my-codex--render-review-request request-id))
     (t
      (my-codex--line (format "Approval needed (%s)%s"
                              (or (plist-get item :requestKind) "request")
                              (if (plist-get item :command) ":" ""))
                      'my-codex-approval-face)
      (when-let ((command (plist-get item :command)))
        (my-codex--line (concat "  $ " command) 'my-codex-command-face))
      (when-let ((cwd (plist-get item :cwd)))
        (my-codex--line (concat "  cwd: " cwd)))
      (when-let ((reason (plist-get item :reason)))
        (my-codex--line (concat "  reason: " reason)))
      (seq-doseq (change (plist-get item :changes))
        (my-codex--line (format "  %s %s" (plist-get change :kind) (plist-get change :path))))
      (let ((start (point))
            (id my-codex--session-id))
        (insert "  ")
        (dolist (choice '(("[Accept]" . "accept")
                          ("[Accept for session]" . "acceptForSession")
                          ("[Decline]" . "decline")))
          (insert-text-button (car choice)
                              'action (lambda (_button)
                                        (my-codex-respond (cdr choice) request-id
                                                          (gethash id my-codex--sessions)))
                              'follow-link t
                              'my-codex-decision (cdr choice)
                              'help-echo (format "Answer %s: %s" request-id (cdr choice)))
          (insert " "))
        (insert "\n")
        (put-text-property start (point) 'my-codex-request request-id))))))

(defun my-codex--render-review-request (request-id)
  "Insert the prompt review REQUEST-ID: learn mode rewrote the prompt.
Its buttons show the review, send the rewrite, edit it, or send the
prompt as typed."
  (my-codex--line (format "Learn mode rewrote your prompt (%s): accept, edit or decline" request-id)
                  'my-codex-approval-face)
  (let ((start (point))
        (id my-codex--session-id))
    (insert "  ")
    (dolist (choice `(("[Review]" my-codex-prompt-review
                       "Show your prompt and the rewrite as a diff")
                      ("[Accept]" ,(apply-partially #'my-codex-respond "accept")
                       "Send the rewrite")
                      ("[Edit]" my-codex-edit-prompt "Edit the rewrite, then send it")
                      ("[Decline]" ,(apply-partially #'my-codex-respond "decline")
                       "Send your prompt as you typed it")))
      (let ((function (nth 1 choice)))
        (insert-text-button (car choice)
                            'action (lambda (_button)
                                      (funcall function request-id
                                               (gethash id my-codex--sessions)))
                            'follow-link t
                            'help-echo (nth 2 choice)))
      (insert " "))
    (insert "\n")
    (put-text-property start (point) 'my-codex-request request-id)))

(defun my-codex--retire-request (request-id decision)
  "Replace the buttons of REQUEST-ID with the DECISION taken on it."
  (save-excursion
    (goto-char my-codex--output-end)
    (when-let ((match (text-property-search-backward 'my-codex-request request-id t)))
      (let ((inhibit-read-only t))
        (delete-region (prop-match-beginning match) (prop-match-end match))
        (goto-char (prop-match-beginning match))
        (insert (propertize (format "  -> %s\n" decision)
                            'face 'my-codex-status-face
                            'read-only t 'front-sticky t 'rear-nonsticky t))))))

(defun my-codex--insert-report (text)
  "Insert the report TEXT of a finished turn."
  (my-codex--transcript-change
    (my-codex--close-streams)
    (my-codex--at my-codex--output-end
      (my-codex--line "Report:" 'my-codex-heading-face)
      (my-codex--line (replace-regexp-in-string "^" "  " (string-trim-right (or text "")))
                      'my-codex-status-face))))

(defun my-codex-toggle-output ()
  "Fold or unfold the output of the command at point, else move to the next button."
  (interactive)
  (let ((key (get-text-property (point) 'my-codex-fold)))
    (if (not key)
        (forward-button 1 t)
      (save-excursion
        (when-let ((match (text-property-search-forward 'my-codex-output key t)))
          (let ((hidden (get-text-property (prop-match-beginning match) 'invisible)))
            (my-codex--transcript-change
              (put-text-property (prop-match-beginning match) (prop-match-end match)
                                 'invisible (not hidden)))))))))

(defun my-codex--prompt-text ()
  "Return the prompt typed in the current session buffer, trimmed."
  (string-trim (buffer-substring-no-properties my-codex--prompt-start (point-max))))

(defun my-codex--set-prompt (text)
  "Replace the prompt typed in the current session buffer with TEXT."
  (let ((inhibit-read-only t))
    (delete-region my-codex--prompt-start (point-max))
    (goto-char (point-max))
    (insert text)))

(defun my-codex-return ()
  "Send the prompt when point is in it, else act on the button or command at point."
  (interactive)
  (cond ((and my-codex--prompt-start (>= (point) my-codex--prompt-start))
         (my-codex-send (my-codex--prompt-text)))
        ((button-at (point)) (push-button))
        ((get-text-property (point) 'my-codex-fold) (my-codex-toggle-output))
        (t (goto-char (point-max)))))

(defun my-codex-previous-input (n)
  "Replace the prompt with the Nth previous prompt of this session, as in comint."
  (interactive "p")
  (unless (derived-mode-p 'my-codex-session-mode)
    (user-error "Not in a Codex session buffer"))
  (unless my-codex--prompts
    (user-error "No earlier prompt in this session"))
  (unless (memq last-command '(my-codex-previous-input my-codex-next-input))
    (setq my-codex--history-index nil
          my-codex--history-draft (buffer-substring-no-properties
                                   my-codex--prompt-start (point-max))))
  (let ((index (+ (or my-codex--history-index -1) n)))
    (cond ((>= index (length my-codex--prompts))
           (setq index (1- (length my-codex--prompts)))
           (message "No earlier prompt"))
          ((< index 0)
           (setq my-codex--history-index nil)
           (my-codex--set-prompt (or my-codex--history-draft ""))
           (setq index nil)))
    (when index
      (setq my-codex--history-index index)
      (my-codex--set-prompt (nth index my-codex--prompts)))))

(defun my-codex-next-input (n)
  "Replace the prompt with the Nth next prompt of the session, then with the draft."
  (interactive "p")
  (my-codex-previous-input (- n)))

(defun my-codex-previous-prompt (n)
  "Move to the Nth previous prompt of the transcript."
  (interactive "p")
  (dotimes (_ n)
    (let ((here (point))
          (found nil))
      (beginning-of-line)
      (while (and (not found) (re-search-backward "^> " nil t))
        (setq found (get-text-property (point) 'my-codex-prompt)))
      (if found
          (forward-char 2)
        (goto-char here)
        (user-error "No earlier prompt")))))

(defun my-codex-next-prompt (n)
  "Move to the Nth next prompt of the transcript, or to the prompt being typed."
  (interactive "p")
  (dotimes (_ n)
    (let ((found nil))
      (end-of-line)
      (while (and (not found) (re-search-forward "^> " my-codex--prompt-start t))
        (setq found (get-text-property (match-beginning 0) 'my-codex-prompt)))
      (unless found
        (goto-char (point-max))))))

;;;; Commands

(defun my-codex--show (buffer &optional same-window)
  "Display BUFFER, in the selected window when SAME-WINDOW."
  (if same-window
      (pop-to-buffer-same-window buffer)
    (pop-to-buffer buffer)))

;;;###autoload
(defun my-codex-start-session (&optional name prompt fresh options)
  "Start the Codex session NAME in the current project and show its buffer.
NAME defaults to `my-codex-default-session-name'.  A name is your
handle on a conversation: a live session of that name is reused, and
an earlier one (stopped, interrupted or failed) is resumed, with its
history.  With FRESH (interactively, \\[universal-argument]), start a new
conversation under NAME; the earlier one keeps its record under a new
name such as NAME~1.  PROMPT, when non-empty, starts the first turn.

OPTIONS is a plist of the new session's options: `:isolation'
\(\"shared\" or \"worktree\"), `:role' (\"worker\", \"explorer\" or
\"verifier\"), `:writeScope' (a list of globs), `:model', `:effort',
`:notes' (t or :json-false) and `:learn' (t: learn mode, which
turns notes on).  Interactively, \\[universal-argument] \\[universal-argument] asks for them:
see `my-codex-start-session-with-options'.  `my-codex-default-isolation'
applies when OPTIONS say nothing of isolation, and `my-codex-notes'
when they say nothing of notes and the session is new; both as the
project sets them in .dir-locals.el.  What the sidecar
warns of (uncommitted changes a work tree does not get, write scopes
that meet) is shown in the echo area.  Return the session's buffer."
  (interactive
   (if (equal current-prefix-arg '(16))
       (my-codex--read-start-options)
     (let ((fresh (and current-prefix-arg t)))
       (list (my-codex--read-name (if fresh "Start a fresh Codex session" "Start Codex session"))
             (read-string "First prompt (optional): " nil 'my-codex--prompt-history)
             fresh))))
  (my-codex--load-sessions)
  (let* ((name (if (or (null name) (string-empty-p name)) my-codex-default-session-name name))
         (earlier (my-codex--named name))
         (options (my-codex--default-options options (or fresh (null earlier))))
         (params (append (list :project (my-codex--project) :name name)
                         (and fresh (list :fresh t))
                         (and prompt (not (string-empty-p (string-trim prompt)))
                              (list :prompt prompt))
                         (my-codex--start-params options)))
         (result (my-codex--request "codex/session/start" params
                                    (max 60 my-codex-request-timeout)))
         (session (my-codex--remember (plist-get result :session)))
         (resumed (and earlier (not (my-codex--live-p earlier))
                       (not (eq (plist-get result :created) t))))
         (warnings (my-codex--start-warnings (append (plist-get result :warnings) nil)
                                             resumed options))
         (buf (my-codex--open-buffer session)))
    (when my-codex-pop-to-buffer-on-start
      (my-codex--show buf))
    (cond
     ((called-interactively-p 'any)
      (message "Codex session %s %s%s" (my-codex--label session)
               (cond ((and (eq (plist-get result :created) t) earlier
                           (not (equal (plist-get earlier :id) (plist-get session :id))))
                      (format "started afresh; the earlier one is now %s"
                              (plist-get (gethash (plist-get earlier :id) my-codex--sessions)
                                         :name)))
                     ((eq (plist-get result :created) t) "started")
                     (resumed "resumed")
                     (t "reused"))
               (if warnings (concat "; " (string-join warnings "; ")) "")))
     (warnings
      (message "Codex session %s: %s" (my-codex--label session) (string-join warnings "; "))))
    buf))

(defun my-codex--default-options (options new)
  "Return OPTIONS with the project's defaults for what they leave out.
Only when NEW (the start makes a new session): the isolation comes
from `my-codex-default-isolation', notes from `my-codex-notes'.  A
session that is resumed keeps what it had."
  (when new
    (let ((isolation (my-codex--project-setting 'my-codex-default-isolation)))
      (when (and isolation (not (plist-member options :isolation)))
        (setq options (append (list :isolation (symbol-name isolation)) options))))
    (when (and (not (plist-member options :notes)) (not (plist-get options :learn)))
      (setq options (append (list :notes (if (my-codex--project-setting 'my-codex-notes)
                                             t :json-false))
                            options))))
  options)

(defun my-codex--start-warnings (warnings resumed options)
  "Return the WARNINGS of a start worth showing, as they read best.
When RESUMED, the sidecar's warnings are about options the resumed
session does not take: shown only when the caller gave OPTIONS, and
without repeating that the session resumed."
  (cond ((not resumed) warnings)
        ((null options) nil)
        (t (mapcar (lambda (w)
                     (replace-regexp-in-string
                      "\\`'[^']*' resumed its earlier conversation; " "" w))
                   warnings))))

(defun my-codex--start-params (options)
  "Return the start params of OPTIONS, a plist, without the empty ones."
  (let (params)
    (cl-loop for (key value) on options by #'cddr
             do (unless (or (null value) (equal value "") (and (vectorp value) (zerop (length value))))
                  (setq params (plist-put params key (if (and (listp value) (eq key :writeScope))
                                                         (vconcat value)
                                                       value)))))
    params))

;;;###autoload
(defun my-codex-start-session-with-options ()
  "Start a new Codex session, asking for its options first.
Asks for the name, where it works (the project's own work tree, or
a git work tree of its own on a branch codex/NAME), its role (an
`explorer' only reads, in Codex's read-only sandbox), its write
scope (globs it should keep to; writes outside are flagged), the
model and the reasoning effort (completion over the models Codex
offers; empty for Codex's default), notes (`off', `notes': the
notetaker notes each turn, or `learn': learn mode, where each prompt
is rewritten with what the project learned and waits for your
review), and a first prompt.  Options
apply to a new session: a name that is taken is offered a fresh
conversation instead."
  (interactive)
  (let ((current-prefix-arg '(16)))
    (call-interactively #'my-codex-start-session)))

(defvar my-codex--models nil
  "The models Codex offers, as `codex/models' last said, or nil.")

(defun my-codex--models ()
  "Return the models Codex can run; ask the sidecar the first time."
  (or my-codex--models
      (setq my-codex--models
            (append (plist-get (my-codex--request "codex/models" nil (max 60 my-codex-request-timeout))
                               :models)
                    nil))))

(defun my-codex--read-model (models)
  "Read a model among MODELS; return its id, or nil for the default."
  (let* ((table (mapcar (lambda (m) (cons (plist-get m :id) m)) models))
         (model (completing-read
                 "Model (empty: as Codex is configured): "
                 (my-codex--completion-table-in-order
                  table
                  (lambda (m)
                    (format "  %s%s" (or (plist-get m :displayName) "")
                            (if (eq (plist-get m :isDefault) t) " (default)" ""))))
                 nil nil nil nil "")))
    (if (string-empty-p model) nil model)))

(defun my-codex--read-effort (models model)
  "Read a reasoning effort for MODEL among MODELS; nil for the model's default."
  (let* ((found (or (seq-find (lambda (m) (equal (plist-get m :id) model)) models)
                    (seq-find (lambda (m) (eq (plist-get m :isDefault) t)) models)))
         (efforts (append (plist-get found :efforts) nil))
         ;; Codex takes any word here; where the model's efforts are known,
         ;; a typo should not reach it.
         (effort (completing-read "Reasoning effort (empty: the model's default): "
                                  efforts nil (and efforts t) nil nil "")))
    (if (string-empty-p effort) nil effort)))

(defun my-codex--read-start-options ()
  "Read the arguments of `my-codex-start-session' with options, as a list."
  (let* ((name (my-codex--read-name "Start Codex session with options"))
         (earlier (my-codex--named name))
         (fresh (when earlier
                  (when (my-codex--live-p earlier)
                    (user-error "Codex %s is live: options are for a new session; pick another name or kill it first"
                                (my-codex--label earlier)))
                  (or (y-or-n-p (format "Codex %s exists; start a fresh conversation under that name? "
                                        (my-codex--label earlier)))
                      (user-error "Pick another name for a new session"))))
         (default-isolation (symbol-name (or (my-codex--project-setting 'my-codex-default-isolation)
                                             'shared)))
         (isolation (completing-read (format-prompt "Work in" default-isolation)
                                     '("shared" "worktree") nil t nil nil default-isolation))
         (role (completing-read (format-prompt "Role" "worker")
                                '("worker" "explorer" "verifier") nil t nil nil "worker"))
         (scope (unless (equal role "explorer")
                  (split-string (read-string "Write scope (globs, space-separated; empty: anywhere): ")
                                nil t)))
         (models (my-codex--models))
         (model (my-codex--read-model models))
         (effort (my-codex--read-effort models model))
         (notes (my-codex--read-notes))
         (prompt (read-string "First prompt (optional): " nil 'my-codex--prompt-history)))
    (list name prompt fresh
          (append (list :isolation isolation :role role :writeScope scope :model model
                        :effort effort)
                  notes))))

(defconst my-codex--notes-choices
  '(("off" "no notetaker" :notes :json-false)
    ("notes" "a note after each turn in the project's learnings (spends model tokens)" :notes t)
    ("learn" "notes, and each prompt rewritten with what the project learned, for you to review"
     :notes t :learn t))
  "What `my-codex-start-session-with-options' offers for the notetaker.
Each is (ANSWER DESCRIPTION . START-OPTIONS).")

(defun my-codex--read-notes ()
  "Read whether a new session has notes, or learn mode; return start options."
  (let* ((default (if (my-codex--project-setting 'my-codex-notes) "notes" "off"))
         (answer (completing-read
                  (format-prompt "Notes" default)
                  (my-codex--completion-table-in-order
                   my-codex--notes-choices (lambda (choice) (concat "  " (car choice))))
                  nil t nil nil default)))
    (cddr (assoc (if (string-empty-p answer) default answer) my-codex--notes-choices))))

;;;###autoload
(defun my-codex-switch-session (session)
  "Show the buffer of SESSION, a name in the project or a session plist.
Interactively, choose among the project's sessions, stopped ones
included; the buffer of an earlier session is rebuilt from its
transcript.  Return the buffer."
  (interactive
   (list (my-codex--read-session "Switch to Codex session: " t nil t)))
  (let ((buf (my-codex--open-buffer (my-codex--session session))))
    (my-codex--show buf t)
    buf))

(defun my-codex--typed-or-read (prompt)
  "Return the prompt typed in this session buffer, else one read with PROMPT."
  (or (and (derived-mode-p 'my-codex-session-mode)
           (let ((typed (my-codex--prompt-text)))
             (and (not (string-empty-p typed)) typed)))
      (read-string prompt nil 'my-codex--prompt-history)))

;;;###autoload
(defun my-codex-send (text &optional session)
  "Send TEXT as the next prompt of SESSION, by default the current buffer's.
Interactively, TEXT is the prompt typed at the end of the session
buffer, or read from the minibuffer.  A session that is not running
\(stopped, interrupted or failed) is resumed first, on the same Codex
thread.  While the session runs a turn, TEXT may be added to that
turn instead (steering it): see `my-codex-steer'.  Return the turn's
id (nil while the prompt waits)."
  (interactive
   (let ((session (my-codex--read-session "Send to Codex session: " t)))
     (list (my-codex--typed-or-read (format "Prompt for %s: " (my-codex--label session)))
           session)))
  (when (or (null text) (string-empty-p (string-trim text)))
    (user-error "Nothing to send: type a prompt first"))
  (let* ((session (my-codex--session session))
         (_ (when (seq-some #'my-codex--prompt-review-p (plist-get session :pending))
              (user-error "Codex %s waits for you to review your rewritten prompt first: %s"
                          (my-codex--label session)
                          (substitute-command-keys
                           "\\<my-codex-session-mode-map>\\[my-codex-accept] sends the rewrite, \\[my-codex-edit-prompt] edits it, \\[my-codex-decline] sends yours, \\[my-codex-cancel] sends nothing"))))
         (from-prompt (and (derived-mode-p 'my-codex-session-mode)
                           (equal my-codex--session-id (plist-get session :id))
                           (equal (string-trim text) (my-codex--prompt-text))))
         (steer (and (my-codex--live-p session) (my-codex--turn-running-p session)
                     (pcase my-codex-steer
                       ('always t)
                       ('ask (or (y-or-n-p (format "Codex %s is running a turn: add this to it? "
                                                   (my-codex--label session)))
                                 (user-error "Not sent: Codex %s is still running its turn (%s cancels it)"
                                             (my-codex--label session)
                                             (substitute-command-keys "\\[my-codex-cancel]"))))
                       (_ nil))))
         (result (if steer
                     (my-codex--steer-or-send session text)
                   (my-codex--request "codex/session/send"
                                      (append (my-codex--ref session) (list :text text))
                                      (max 60 my-codex-request-timeout)))))
    (my-codex--remember (plist-get result :session))
    (add-to-history 'my-codex--prompt-history text)
    (when from-prompt
      (let ((inhibit-read-only t))
        (delete-region my-codex--prompt-start (point-max)))
      ;; Undo remembers the edits of the next prompt only.
      (setq buffer-undo-list nil
            my-codex--history-index nil)
      (set-buffer-modified-p nil))
    (plist-get result :turnId)))

(defun my-codex--steer-or-send (session text)
  "Add TEXT to SESSION's running turn; if that turn ended meanwhile, send TEXT.
Return the sidecar's result."
  (let* ((timeout (max 60 my-codex-request-timeout))
         (answer (my-codex--call (my-codex--ensure-connection) "codex/session/steer"
                                 (append (my-codex--ref session) (list :text text)) timeout)))
    (cond ((eq (car answer) 'result) (cdr answer))
          ((and (eql (plist-get (cdr answer) :code) -32007)
                (string-match-p "no running turn" (or (plist-get (cdr answer) :message) "")))
           (my-codex--request "codex/session/send"
                              (append (my-codex--ref session) (list :text text)) timeout))
          (t (user-error "%s" (my-codex--error-text (cdr answer) "codex/session/steer" timeout))))))

;;;###autoload
(defun my-codex-steer (text &optional session)
  "Add TEXT to the turn SESSION is running, without waiting for it to end.
Codex reads it before its next step.  Interactively, TEXT is the
prompt typed in the session buffer, or read.  Return the turn's id."
  (interactive
   (let ((session (my-codex--read-session "Steer the turn of: " nil #'my-codex--turn-running-p)))
     (list (my-codex--typed-or-read (format "Add to the turn of %s: " (my-codex--label session)))
           session)))
  (let ((my-codex-steer 'always)
        (session (my-codex--session session)))
    (unless (my-codex--turn-running-p session)
      (user-error "Codex %s runs no turn to add to: send a prompt instead" (my-codex--label session)))
    (my-codex-send text session)))

(defun my-codex--path-for (session file)
  "Return FILE relative to SESSION's project root if inside it, else abbreviated."
  (let ((root (plist-get (plist-get session :project) :root))
        (file (file-truename file)))
    (if (and root (file-in-directory-p file root))
        (file-relative-name file root)
      (abbreviate-file-name file))))

(defun my-codex--add-to-prompt (session text)
  "Append TEXT to the prompt of SESSION, show its buffer with point at the end."
  (let ((buf (my-codex--open-buffer session)))
    (with-current-buffer buf
      (goto-char (point-max))
      (let ((typed (buffer-substring-no-properties my-codex--prompt-start (point-max))))
        (unless (or (string-empty-p typed) (string-suffix-p "\n" typed))
          (insert "\n")))
      (insert text))
    (my-codex--show buf)
    (goto-char (point-max))
    buf))

;;;###autoload
(defun my-codex-send-region (beg end &optional session)
  "Put the text from BEG to END, with its file and lines, in SESSION's prompt.
The session's buffer is shown with point after it: type your question
and send with \\<my-codex-session-mode-map>\\[my-codex-send].  Interactively, the region, and
the session is chosen among the project's sessions."
  (interactive
   (progn
     (unless (use-region-p) (user-error "No region: mark the text to send first"))
     (list (region-beginning) (region-end)
           (my-codex--read-session "Add the region to the prompt of: " t nil t))))
  (let* ((session (my-codex--session session))
         (first (line-number-at-pos beg))
         (last (line-number-at-pos (if (and (> end beg)
                                            (save-excursion (goto-char end) (bolp)))
                                       (1- end)
                                     end)))
         (lines (if (= first last) (format "line %d" first) (format "lines %d-%d" first last)))
         (where (if buffer-file-name
                    (format "`%s` %s" (my-codex--path-for session buffer-file-name) lines)
                  (format "buffer %s, %s" (buffer-name) lines)))
         (text (string-trim-right (buffer-substring-no-properties beg end) "\n+")))
    (deactivate-mark)
    (my-codex--add-to-prompt session (format "From %s:\n```\n%s\n```\n" where text))))

;;;###autoload
(defun my-codex-send-file (file &optional session)
  "Put a reference to FILE in SESSION's prompt and show the session's buffer.
Interactively, FILE is the current buffer's file (else it is read)
and the session is chosen among the project's sessions."
  (interactive
   (list (or buffer-file-name (read-file-name "Refer to file: " nil nil t))
         (my-codex--read-session "Add the file to the prompt of: " t nil t)))
  (let ((session (my-codex--session session)))
    (my-codex--add-to-prompt session (format "`%s` " (my-codex--path-for session file)))))

;;;###autoload
(defun my-codex-cancel (&optional session)
  "Cancel the running turn, or the queued prompt, of SESSION.
Interactively, outside a session buffer, choose among the sessions
with a turn under way."
  (interactive (list (my-codex--read-session "Cancel the turn of: " nil #'my-codex--active-p)))
  (let* ((session (my-codex--session session))
         (review (seq-find #'my-codex--prompt-review-p (plist-get session :pending))))
    (my-codex--remember
     (plist-get (my-codex--request "codex/session/cancel" (my-codex--ref session))
                :session))
    (if review
        (my-codex--review-answered session review "cancel")
      (message "Cancelling the turn of %s" (my-codex--label session)))))

(defun my-codex--pending-requests ()
  "Return (SESSION . REQUEST) for everything that waits on the user, in list order."
  (let (found)
    (dolist (session (my-codex--cached))
      (seq-doseq (request (plist-get session :pending))
        (push (cons session request) found)))
    (nreverse found)))

(defun my-codex--read-pending (prompt &optional predicate)
  "Read a request that waits on the user, with PROMPT; return (SESSION . REQUEST).
PREDICATE, when given, filters the requests."
  (my-codex--load-sessions)
  (let ((table (mapcar (lambda (pair)
                         (cons (format "%s %s: %s" (my-codex--label (car pair))
                                       (plist-get (cdr pair) :requestId)
                                       (my-codex--request-text (cdr pair)))
                               pair))
                       (seq-filter (lambda (pair) (or (null predicate) (funcall predicate (cdr pair))))
                                   (my-codex--pending-requests)))))
    (unless table
      (user-error (if predicate "No rewritten prompt waits on you" "Nothing waits on you")))
    (cdr (assoc (completing-read (format-prompt prompt (caar table))
                                 (my-codex--completion-table-in-order table)
                                 nil t nil nil (caar table))
                table))))

(defun my-codex--completion-table-in-order (table &optional describe category)
  "Return a completion table over TABLE, an alist, in TABLE's order.
DESCRIBE, when given, returns the annotation of a candidate from
its value (the cdr of its entry); CATEGORY is the completion category."
  (lambda (string pred action)
    (if (eq action 'metadata)
        `(metadata ,@(and category `((category . ,category)))
                   (display-sort-function . identity)
                   ,@(and describe
                          `((annotation-function
                             . ,(lambda (candidate)
                                  (when-let ((entry (assoc candidate table)))
                                    (funcall describe (cdr entry))))))))
      (complete-with-action action table string pred))))

(defun my-codex--request-at-hand (request-id session)
  "Return (SESSION . REQUEST-ID): as given, else as found at hand.
A line of the inbox names both; a review or edit buffer, the list or
a session buffer names the session (a review also its request).
Either may be nil when nothing at hand names it."
  (let* ((line (and (null request-id) (null session) (derived-mode-p 'my-codex-pending-mode)
                    (tabulated-list-get-id)))
         (session (cond (session (my-codex--session session))
                        (line (gethash (car line) my-codex--sessions))
                        (t (my-codex--current-session)))))
    (cons session
          (or request-id (cdr line)
              (and my-codex--review (plist-get (cdr my-codex--review) :requestId))))))

(defun my-codex-respond (decision &optional request-id session text)
  "Answer the approval REQUEST-ID of SESSION with DECISION.
DECISION is \"accept\", \"acceptForSession\", \"decline\" or \"cancel\";
for a prompt rewritten by learn mode, \"accept\" sends the rewrite,
\"edit\" sends TEXT, \"decline\" sends the prompt as typed and
\"cancel\" sends nothing (the prompt goes back to the session
buffer's prompt).  In a session buffer, REQUEST-ID defaults to the
request at point, else its oldest pending one; in a prompt review,
to that review; on a line of the list or of \\[my-codex-pending], to
that line's; elsewhere the request is chosen among everything that
waits on you, in every project.  Return the session."
  (let* ((at-hand (my-codex--request-at-hand request-id session))
         (session (car at-hand))
         (request-id (cdr at-hand)))
    (unless session
      (let ((pair (my-codex--read-pending (format "%s" (capitalize (my-codex--decision-words decision))))))
        (setq session (car pair)
              request-id (plist-get (cdr pair) :requestId))))
    (setq request-id
          (or request-id
              (and (derived-mode-p 'my-codex-session-mode)
                   (get-text-property (point) 'my-codex-request))
              (plist-get (car (append (plist-get session :pending) nil)) :requestId)
              (user-error "Codex %s waits for no approval" (my-codex--label session))))
    (let ((request (my-codex--pending-request session request-id)))
      (when (my-codex--prompt-review-p request)
        (when (equal decision "acceptForSession")
          (user-error "A rewritten prompt is accepted, edited or declined, not accepted for the session"))
        (when (equal decision "edit")
          (unless (and (stringp text) (not (string-empty-p (string-trim text))))
            (user-error "Nothing to send: the edited prompt is empty"))))
      (prog1 (my-codex--remember
              (plist-get (my-codex--request "codex/session/respond"
                                            (append (my-codex--ref session)
                                                    (list :requestId request-id
                                                          :decision decision)
                                                    (and text (list :text text))))
                         :session))
        (when (my-codex--prompt-review-p request)
          (my-codex--review-answered session request decision))))))

(defun my-codex--pending-request (session request-id)
  "Return the request REQUEST-ID that SESSION waits on, or nil."
  (seq-find (lambda (r) (equal (plist-get r :requestId) request-id))
            (plist-get session :pending)))

(defun my-codex--prompt-review-p (request)
  "Return non-nil when REQUEST is a prompt rewritten by learn mode, for review."
  (equal (plist-get request :kind) "promptReview"))

(defun my-codex--decision-words (decision)
  "Return DECISION in words."
  (pcase decision
    ("accept" "accept")
    ("acceptForSession" "accept for the session")
    ("decline" "decline")
    (_ decision)))

(defun my-codex-accept ()
  "Accept the approval request at point, or the oldest pending one.
For a prompt that learn mode rewrote, send the rewrite.  Outside a
session, choose among everything that waits on you."
  (interactive)
  (my-codex-respond "accept"))

(defun my-codex-accept-for-session ()
  "Accept the request at point, or the oldest, for the rest of the session.
Outside a session, choose among everything that waits on you."
  (interactive)
  (my-codex-respond "acceptForSession"))

(defun my-codex-decline ()
  "Decline the approval request at point, or the oldest pending one.
For a prompt that learn mode rewrote, send your prompt as you typed
it.  Outside a session, choose among everything that waits on you."
  (interactive)
  (my-codex-respond "decline"))

;;;###autoload
(defun my-codex-kill-session (&optional session)
  "Stop SESSION's Codex; its buffer and history stay."
  (interactive (list (my-codex--read-session "Kill Codex session: " nil #'my-codex--live-p)))
  (let ((session (my-codex--session session)))
    (my-codex--remember
     (plist-get (my-codex--request "codex/session/kill" (my-codex--ref session))
                :session))
    (message "Killed Codex session %s" (my-codex--label session))))

;;;###autoload
(defun my-codex-kill-all-sessions (&optional all-projects project)
  "Stop every live Codex session of PROJECT, by default the current one.
With ALL-PROJECTS (interactively, a prefix argument), stop every
session of every project.  Interactively, ask once first.  Return
the ids of the killed sessions."
  (interactive "P")
  (let* ((project (unless all-projects (or project (my-codex--project))))
         (what (if project (format "of %s" (abbreviate-file-name project))
                 "of every project")))
    (when (or (not (called-interactively-p 'any))
              (yes-or-no-p (format "Kill every Codex session %s? " what)))
      (let ((killed (append (plist-get (my-codex--request "codex/session/killAll"
                                                          (list :project project))
                                       :killed)
                            nil)))
        (message "Killed %s %s" (my-codex--count killed "Codex session") what)
        killed))))

;;;###autoload
(defun my-codex-rename-session (new-name &optional session)
  "Rename SESSION to NEW-NAME; its buffer follows the sidecar's new buffer name."
  (interactive
   (let ((session (my-codex--read-session "Rename Codex session: " t)))
     (list (read-string (format "Rename %s to: " (plist-get session :name)))
           session)))
  (let* ((session (my-codex--session session))
         (result (my-codex--request "codex/session/rename"
                                    (append (my-codex--ref session)
                                            (list :newName new-name)))))
    (my-codex--remember (plist-get result :session))
    (plist-get (plist-get result :session) :bufferName)))

;;;###autoload
(defun my-codex-session-report (&optional session)
  "Show the report of SESSION's last turn and return its text."
  (interactive (list (my-codex--read-session "Report of Codex session: " t)))
  (let* ((session (my-codex--session session))
         (text (plist-get (my-codex--request "codex/session/report" (my-codex--ref session))
                          :text)))
    (with-current-buffer (get-buffer-create "*my-codex report*")
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert text "\n"))
      (special-mode)
      (goto-char (point-min)))
    (when (called-interactively-p 'interactive)
      (display-buffer "*my-codex report*"))
    text))

;;;###autoload
(defun my-codex-resume-session (&optional session quiet)
  "Start Codex again for SESSION, a stopped, interrupted or failed session.
Show its buffer unless QUIET.  Return the session."
  (interactive
   (list (my-codex--read-session "Resume Codex session: " t
                                 (lambda (s) (not (my-codex--live-p s))))))
  (let* ((session (my-codex--session session))
         (result (my-codex--request "codex/session/resume" (my-codex--ref session)
                                    (max 60 my-codex-request-timeout)))
         (session (my-codex--remember (plist-get result :session)))
         (buf (my-codex--open-buffer session)))
    (unless quiet (my-codex--show buf))
    session))

;;;###autoload
(defun my-codex-forget-session (&optional session)
  "Delete the record and transcript of SESSION for good; kill its buffer.
SESSION must not be live: kill it first.  Interactively, ask first.
Return its id."
  (interactive
   (list (my-codex--read-session "Forget Codex session: " t
                                 (lambda (s) (not (my-codex--live-p s))))))
  (let* ((session (my-codex--session session))
         (id (plist-get session :id))
         (label (my-codex--label session)))
    (when (or (not (called-interactively-p 'any))
              (yes-or-no-p (format "Delete Codex session %s and its transcript for good? "
                                   label)))
      (my-codex--request "codex/session/forget" (my-codex--ref session))
      (remhash id my-codex--sessions)
      (when-let ((buf (my-codex--buffer-of id)))
        (kill-buffer buf))
      (my-codex--schedule-views)
      (message "Forgot Codex session %s" label)
      id)))

;;;; Work trees: diff, merge, discard

(defvar my-codex-diff-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-c C-m") #'my-codex-merge-session)
    (define-key map (kbd "C-c C-x") #'my-codex-discard-session)
    map)
  "Keymap of a Codex session's diff, beside `diff-mode''s keys.")

(define-derived-mode my-codex-diff-mode diff-mode "Codex-Diff"
  "Major mode of what a Codex session changed, as a unified diff.
The files it changed are buttons above the diff;
\\<diff-mode-map>\\[diff-goto-source] on a hunk visits its line.  Both open the files where the session
works: its own work tree when it has one.  \\[revert-buffer] asks the
sidecar again.

\\{my-codex-diff-mode-map}"
  (setq buffer-read-only t)
  (setq-local revert-buffer-function #'my-codex--diff-revert))

;;;###autoload
(defun my-codex-diff (&optional session)
  "Show what SESSION changed as a diff, and return the buffer.
A session with a work tree of its own shows everything on its branch
against the commit it started from; a session in the project's own
work tree shows the files it was seen changing, against HEAD.  Files
other sessions changed too are named above the diff."
  (interactive (list (my-codex--read-session "Diff of Codex session: " t)))
  (let* ((session (my-codex--session session))
         (result (my-codex--request "codex/session/diff" (my-codex--ref session)))
         (buf (get-buffer-create (format "*codex diff: %s*" (my-codex--label session)))))
    (with-current-buffer buf
      (unless (derived-mode-p 'my-codex-diff-mode)
        (my-codex-diff-mode))
      (my-codex--diff-fill session result))
    (my-codex--show buf)
    buf))

(defun my-codex--diff-revert (&rest _)
  "Ask the sidecar again for the diff of this buffer's session."
  (let ((session (gethash my-codex--diff-session-id my-codex--sessions)))
    (unless session (user-error "This diff's session is no longer known"))
    (my-codex--diff-fill session (my-codex--request "codex/session/diff" (my-codex--ref session)))))

(defun my-codex--diff-fill (session result)
  "Fill the current buffer with RESULT, the diff of SESSION."
  (let* ((inhibit-read-only t)
         (tree (my-codex--tree session))
         (workdir (file-name-as-directory (my-codex--workdir session)))
         (files (append (plist-get result :files) nil))
         (overlaps (append (plist-get result :overlaps) nil))
         (diff (or (plist-get result :diff) "")))
    (setq my-codex--diff-session-id (plist-get session :id)
          my-codex--buffer-project (plist-get (plist-get session :project) :root)
          default-directory workdir)
    (erase-buffer)
    (insert (propertize
             (if tree
                 (format "Changes of %s in its work tree %s (branch %s, from %s)%s\n"
                         (my-codex--label session) (abbreviate-file-name workdir)
                         (plist-get tree :branch)
                         (substring (or (plist-get tree :base) "") 0
                                    (min 12 (length (or (plist-get tree :base) ""))))
                         (if (my-codex--unmerged-p session) "" ", merged"))
               (format "Changes of %s in %s, against HEAD\n" (my-codex--label session)
                       (abbreviate-file-name workdir)))
             'face 'my-codex-heading-face))
    (if (null files)
        (insert "No changes.\n")
      (dolist (file files)
        (let ((path (plist-get file :path)))
          (insert (format "  %-9s " (or (plist-get file :status) "")))
          (if (equal (plist-get file :status) "deleted")
              (insert path)
            (insert-text-button path
                                'action (lambda (_button)
                                          (find-file-other-window (expand-file-name path workdir)))
                                'help-echo (format "Visit %s" (expand-file-name path workdir))
                                'follow-link t))
          (insert (format "  +%s -%s\n" (or (plist-get file :added) 0)
                          (or (plist-get file :removed) 0))))))
    (dolist (overlap overlaps)
      (let ((others (seq-remove (lambda (id) (equal id (plist-get session :id)))
                                (append (plist-get overlap :sessions) nil))))
        (insert (propertize (format "  ! %s was changed by %s too\n" (plist-get overlap :path)
                                    (mapconcat #'my-codex--label-of others ", "))
                            'face 'my-codex-approval-face))))
    (insert "\n" diff)
    (set-buffer-modified-p nil)
    (goto-char (point-min))))

(defun my-codex--label-of (id)
  "Return the label of the session with ID, or ID when it is not known."
  (let ((session (gethash id my-codex--sessions)))
    (if session (my-codex--label session) id)))

;;;###autoload
(defun my-codex-merge-session (&optional session strategy)
  "Stage what SESSION did in its own work tree in the project's work tree.
STRATEGY is \"squash\" (the default: the changes, as one set) or
\"commit\" (a merge of its branch); interactively, a prefix argument
asks.  Nothing is committed: a commit message buffer opens with the
sidecar's suggested message, where \\<log-edit-mode-map>\\[log-edit-done] commits what
is staged and \\[log-edit-kill-buffer] leaves it staged.  Nothing is touched, and the
files are named, when the project's work tree has uncommitted
changes in the same files or the merge would conflict.  Return the
sidecar's result: the session, the files and the message."
  (interactive
   (list (my-codex--read-session "Merge Codex session: " t #'my-codex--unmerged-p)
         (if current-prefix-arg
             (completing-read (format-prompt "Merge strategy" "squash") '("squash" "commit")
                              nil t nil nil "squash")
           "squash")))
  (let* ((session (my-codex--session session))
         (result (my-codex--request "codex/session/merge"
                                    (append (my-codex--ref session)
                                            (list :strategy (or strategy "squash")))
                                    (max 60 my-codex-request-timeout)))
         (files (append (plist-get result :files) nil)))
    (my-codex--remember (plist-get result :session))
    (if (null files)
        (message "Codex %s changed nothing: nothing to merge" (my-codex--label session))
      (my-codex--commit-buffer session result)
      (message "Merged %s into %s, staged: %s (%s commits, %s leaves them staged)"
               (my-codex--label session)
               (abbreviate-file-name (plist-get (plist-get session :project) :root))
               (string-join files ", ")
               (substitute-command-keys "\\<log-edit-mode-map>\\[log-edit-done]")
               (substitute-command-keys "\\<log-edit-mode-map>\\[log-edit-kill-buffer]")))
    result))

(defun my-codex--commit-buffer (session result)
  "Open a commit message buffer for RESULT, the merge of SESSION; return it."
  (let* ((root (plist-get (plist-get session :project) :root))
         (id (plist-get session :id))
         (files (append (plist-get result :files) nil))
         (buf (get-buffer-create (format "*codex commit: %s*" (my-codex--label session)))))
    (with-current-buffer buf
      (setq default-directory (file-name-as-directory root))
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert (or (plist-get result :message) ""))))
    (log-edit (lambda ()
                (interactive)
                (my-codex--commit root))
              nil
              `((log-edit-listfun . ,(lambda () files))
                ;; The diff is shown beside the message, which keeps the cursor.
                (log-edit-diff-function
                 . ,(lambda ()
                      (display-buffer (save-current-buffer
                                        (save-window-excursion
                                          (my-codex-diff (gethash id my-codex--sessions))))))))
              buf)
    (with-current-buffer buf
      (goto-char (point-min)))
    buf))

(defun my-codex--commit (root)
  "Commit what is staged in ROOT, with the current buffer as the message.
The commit runs without waiting; the echo area tells how it went."
  (let* ((text (buffer-substring-no-properties (point-min) (point-max)))
         (default-directory (file-name-as-directory root))
         (output (generate-new-buffer " *my-codex git commit*"))
         (proc (make-process
                :name "my-codex-git-commit"
                :buffer output
                :command '("git" "commit" "-q" "-F" "-")
                :connection-type 'pipe
                :noquery t
                :sentinel
                (lambda (proc _event)
                  (unless (process-live-p proc)
                    (if (zerop (process-exit-status proc))
                        (message "Committed in %s: %s" (abbreviate-file-name root)
                                 (my-codex--first-line text))
                      (message "git commit failed in %s: %s" (abbreviate-file-name root)
                               (string-trim (with-current-buffer (process-buffer proc)
                                              (buffer-string)))))
                    (kill-buffer (process-buffer proc)))))))
    (process-send-string proc text)
    (process-send-eof proc)
    proc))

;;;###autoload
(defun my-codex-discard-session (&optional session)
  "Remove SESSION's own work tree and its branch, after asking.
The session is stopped first; its record and transcript stay.
Unmerged changes are lost."
  (interactive (list (my-codex--read-session "Discard the work tree of: " t #'my-codex--tree)))
  (let* ((session (my-codex--session session))
         (tree (or (my-codex--tree session)
                   (user-error "Codex %s has no work tree of its own to discard"
                               (my-codex--label session)))))
    (when (or (not (called-interactively-p 'any))
              (yes-or-no-p (format "Discard the work tree %s and the branch %s of %s%s? "
                                   (abbreviate-file-name (or (plist-get tree :path) ""))
                                   (plist-get tree :branch) (my-codex--label session)
                                   (if (my-codex--unmerged-p session)
                                       ", and its changes that are not merged"
                                     ""))))
      (my-codex--remember
       (plist-get (my-codex--request "codex/session/discard" (my-codex--ref session)
                                     (max 60 my-codex-request-timeout))
                  :session))
      (message "Discarded the work tree and the branch %s of %s"
               (plist-get tree :branch) (my-codex--label session))
      t)))

;;;; Codex's threads: fork, review, adopt

;;;###autoload
(defun my-codex-fork-session (new-name &optional session at-turn)
  "Continue SESSION's conversation in a new session NEW-NAME; show it.
The new session runs on a new Codex thread holding SESSION's turns 1
to AT-TURN (all of them when nil); SESSION itself is untouched.
Interactively, a prefix argument asks for the turn; in a session
buffer, \\<my-codex-session-mode-map>\\[my-codex-fork-here] forks at the turn at point.
Return the new session's buffer."
  (interactive
   (let* ((session (my-codex--read-session "Fork Codex session: " t))
          (turns (or (plist-get session :turns) 0))
          (at (when current-prefix-arg
                (read-number (format "Fork %s after turn (1-%d): " (my-codex--label session) turns)
                             turns))))
     (list (my-codex--read-new-name session at) session at)))
  (let* ((session (my-codex--session session))
         (result (my-codex--request "codex/session/fork"
                                    (append (my-codex--ref session)
                                            (list :newName new-name)
                                            (and at-turn (list :atTurn at-turn)))
                                    (max 60 my-codex-request-timeout)))
         (fork (my-codex--remember (plist-get result :session)))
         (buf (my-codex--open-buffer fork)))
    (my-codex--show buf)
    (message "Codex %s continues %s from %s" (my-codex--label fork) (my-codex--label session)
             (if at-turn (format "turn %d" at-turn) "its last turn"))
    buf))

(defun my-codex--read-new-name (session turn)
  "Read the name of a fork of SESSION after TURN (nil: all)."
  (let ((name (string-trim
               (read-string (format "Continue %s%s in a new session named: "
                                    (my-codex--label session)
                                    (if turn (format " from turn %d" turn) ""))
                            nil 'my-codex--name-history))))
    (when (string-empty-p name)
      (user-error "A fork needs a name of its own"))
    name))

(defun my-codex-fork-here (new-name)
  "Continue this conversation from the turn at point in a new session NEW-NAME.
The new session holds the turns up to and including the one at
point; at the prompt, all of them.  The session itself is untouched."
  (interactive
   (progn
     (unless (derived-mode-p 'my-codex-session-mode)
       (user-error "Not in a Codex session buffer"))
     (list (my-codex--read-new-name (my-codex--current-session) (my-codex--turn-at-point)))))
  (my-codex-fork-session new-name (my-codex--current-session) (my-codex--turn-at-point)))

(defun my-codex--turn-at-point ()
  "Return the number of the turn at point; nil at the prompt, for all of them."
  (unless (>= (point) my-codex--prompt-start)
    (or (get-text-property (point) 'my-codex-turn)
        (and (> (point) (point-min)) (get-text-property (1- (point)) 'my-codex-turn))
        (user-error "No turn here: move to a turn's text, or to the prompt to fork them all"))))

;;;###autoload
(defun my-codex-review (&optional target name)
  "Start a Codex review in a session of its own and show its buffer.
TARGET is what to review: \"uncommittedChanges\" (the default: the
project's uncommitted changes), (:baseBranch BRANCH) or (:commit
SHA).  Interactively, a prefix argument asks for a base branch or a
commit, with completion over the branches.  NAME defaults to the
sidecar's choice: review, review-2, ...  The findings come as the
conversation and the report.  Return the buffer."
  (interactive (list (if current-prefix-arg (my-codex--read-review-target) "uncommittedChanges")))
  (let* ((result (my-codex--request "codex/session/review"
                                    (append (list :project (my-codex--project)
                                                  :target (or target "uncommittedChanges"))
                                            (and name (list :name name)))
                                    (max 60 my-codex-request-timeout)))
         (session (my-codex--remember (plist-get result :session)))
         (buf (my-codex--open-buffer session)))
    (my-codex--show buf)
    (message "Codex %s reviews %s" (my-codex--label session)
             (pcase target
               ((pred listp) (if (plist-get target :baseBranch)
                                 (format "the changes against %s" (plist-get target :baseBranch))
                               (format "commit %s" (plist-get target :commit))))
               (_ "the uncommitted changes")))
    buf))

(defun my-codex--read-review-target ()
  "Read a base branch or a commit to review against; return the review target."
  (let* ((default-directory (file-name-as-directory (my-codex--project)))
         (branches (ignore-errors
                     (process-lines "git" "for-each-ref" "--format=%(refname:short)"
                                    "refs/heads" "refs/remotes")))
         (answer (string-trim (completing-read "Review against branch or commit: "
                                               branches nil nil))))
    (cond ((string-empty-p answer) (user-error "Name a branch or a commit to review against"))
          ((member answer branches) (list :baseBranch answer))
          (t (list :commit answer)))))

;;;###autoload
(defun my-codex-adopt-thread (thread-id name)
  "Make Codex's own conversation THREAD-ID a session named NAME; show it.
Interactively, choose among the conversations Codex saved for this
project (in its own TUI, say) that are not sessions yet.  Its
history is shown, and `codex resume NAME' finds it under the same
name.  While another Codex holds the conversation, the session fails
saying so; it resumes once that Codex lets go.  Return the buffer."
  (interactive
   (let* ((threads (append (plist-get (my-codex--request "codex/project/threads"
                                                         (list :project (my-codex--project))
                                                         (max 60 my-codex-request-timeout))
                                      :threads)
                           nil))
          (table (my-codex--thread-candidates threads)))
     (unless table
       (user-error "Codex has no conversation in %s that is not a session already"
                   (abbreviate-file-name (my-codex--project))))
     (let* ((choice (completing-read "Adopt Codex conversation: "
                                     (my-codex--thread-table table) nil t))
            (thread (cdr (assoc choice table))))
       (list (plist-get thread :threadId)
             (string-trim (read-string (format "Adopt \"%s\" as session: "
                                               (my-codex--first-line (plist-get thread :title)))
                                       nil 'my-codex--name-history))))))
  (let* ((result (my-codex--request "codex/session/adopt"
                                    (list :project (my-codex--project) :threadId thread-id
                                          :name name)
                                    (max 60 my-codex-request-timeout)))
         (session (my-codex--remember (plist-get result :session)))
         (buf (my-codex--open-buffer session)))
    (my-codex--show buf)
    (message "Codex conversation %s is now %s" thread-id (my-codex--label session))
    buf))

(defun my-codex--thread-candidates (threads)
  "Return an alist of unique completion strings to THREADS, newest first."
  (let (table)
    (dolist (thread threads)
      (let ((title (my-codex--first-line (or (plist-get thread :title) ""))))
        (when (or (string-empty-p title) (assoc title table))
          (setq title (format "%s <%s>" title (plist-get thread :threadId))))
        (push (cons title thread) table)))
    (nreverse table)))

(defun my-codex--thread-table (table)
  "Return a completion table over TABLE, in order, annotated with times."
  (my-codex--completion-table-in-order
   table (lambda (thread) (format "  %s" (or (plist-get thread :updatedAt) "")))))

;;;; Codex's own terminal UI

(declare-function term-char-mode "term")
(declare-function term-check-proc "term")

(defun my-codex-tui (&optional session)
  "Open Codex's own terminal UI on SESSION's conversation, in a `term' buffer.
It joins the daemon's Codex on the same thread: what you type there
shows in the session's buffer as it happens, and an approval asked
there can be answered there or here.  A session that is not running
is resumed first.  The sidecar gives the command (`codex/session/tui');
the buffer opens when it answers, and closes when you leave the TUI.
A TUI already open for SESSION is shown again."
  (interactive (list (my-codex--read-session "Codex's terminal UI for session: " t)))
  (require 'term)
  (let* ((session (my-codex--session session))
         (label (my-codex--label session))
         (open (get-buffer (my-codex--tui-buffer-name session))))
    (if (and open (term-check-proc open))
        (pop-to-buffer open)
      (message "Opening Codex's terminal UI on %s..." label)
      (my-codex--async "codex/session/tui" (my-codex--ref session)
                       (lambda (result) (my-codex--tui-open session result))
                       (lambda (text)
                         (message "Codex's terminal UI on %s: %s" label text))))
    nil))

(defun my-codex--tui-buffer-name (session)
  "Return the name of the buffer of Codex's terminal UI on SESSION."
  (format "*codex tui: %s*" (my-codex--label session)))

(defun my-codex--tui-open (session result)
  "Run RESULT's command, Codex's terminal UI on SESSION, in a `term' buffer."
  (let* ((command (append (plist-get result :command) nil))
         (env (plist-get result :env))
         (process-environment
          (append (cl-loop for (key value) on env by #'cddr
                           collect (format "%s=%s" (substring (symbol-name key) 1) value))
                  process-environment))
         (default-directory (file-name-as-directory (my-codex--workdir session)))
         (name (my-codex--tui-buffer-name session))
         (buf (apply #'make-term (substring name 1 -1) (car command) nil (cdr command))))
    (with-current-buffer buf
      (term-char-mode)
      (let ((process (get-buffer-process buf)))
        ;; Leaving the TUI closes its buffer; a failure stays on screen.
        (add-function :after (process-sentinel process)
                      (lambda (proc _event)
                        (when (and (eq (process-status proc) 'exit)
                                   (zerop (process-exit-status proc))
                                   (buffer-live-p (process-buffer proc)))
                          (let ((buf (process-buffer proc)))
                            (dolist (win (get-buffer-window-list buf nil t))
                              (quit-window nil win))
                            (kill-buffer buf)))))))
    (pop-to-buffer buf)
    buf))

;;;; Numbered jumps

;;;###autoload
(defun my-codex-switch-to-session-number (n)
  "Show the buffer of the project's session number N in the list, 1 to 10.
The numbers follow the list's order: what waits on you first."
  (interactive "nSwitch to Codex session number: ")
  (my-codex--load-sessions)
  (let* ((root (my-codex--root-key (my-codex--project)))
         (numbered (my-codex--numbered root))
         (session (and (> n 0) (nth (1- n) numbered))))
    (unless session
      (user-error "No Codex session number %d in %s (it has %s)" n (abbreviate-file-name root)
                  (my-codex--count numbered "numbered session")))
    (my-codex-switch-session session)))

(defmacro my-codex--define-numbered-jumps ()
  "Define `my-codex-switch-to-session-1' ... `my-codex-switch-to-session-0'."
  `(progn
     ,@(mapcar (lambda (n)
                 `(defun ,(intern (format "my-codex-switch-to-session-%d" (% n 10))) ()
                    ,(format "Show the buffer of the project's session number %d." n)
                    (interactive)
                    (my-codex-switch-to-session-number ,n)))
               (number-sequence 1 10))))

(my-codex--define-numbered-jumps)

;;;###autoload
(dotimes (n 10)
  (autoload (intern (format "my-codex-switch-to-session-%d" n)) "my-codex" nil t))

;;;; The list of sessions

(defvar-local my-codex--list-project nil
  "The project root the session list shows, as the sidecar writes it; nil for all.")

(defvar-local my-codex--list-show-stopped nil
  "Non-nil when the session list shows stopped sessions too.")

(defvar my-codex-list-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "RET") #'my-codex-list-visit)
    (define-key map (kbd "a") #'my-codex-accept)
    (define-key map (kbd "s") #'my-codex-accept-for-session)
    (define-key map (kbd "d") #'my-codex-decline)
    (define-key map (kbd "e") #'my-codex-edit-prompt)
    (define-key map (kbd "v") #'my-codex-prompt-review)
    (define-key map (kbd "k") #'my-codex-list-kill)
    (define-key map (kbd "K") #'my-codex-list-kill-all)
    (define-key map (kbd "r") #'my-codex-list-rename)
    (define-key map (kbd "c") #'my-codex-list-cancel)
    (define-key map (kbd "R") #'my-codex-list-report)
    (define-key map (kbd "t") #'my-codex-list-toggle-stopped)
    (define-key map (kbd "D") #'my-codex-forget-session)
    (define-key map (kbd "=") #'my-codex-diff)
    (define-key map (kbd "M") #'my-codex-merge-session)
    (define-key map (kbd "X") #'my-codex-discard-session)
    (define-key map (kbd "F") #'my-codex-fork-session)
    map)
  "Keymap of the Codex session list.")

(define-derived-mode my-codex-list-mode tabulated-list-mode "Codex Sessions"
  "Major mode listing Codex sessions, what waits on you and what failed on top.
The list follows the sessions as they change; \\[revert-buffer] asks the
sidecar again.  The first column numbers the project's sessions for
\\[my-codex-switch-to-session-1] ... \\[my-codex-switch-to-session-0].  Columns that
say nothing are left out: `Project' (the list of every project has
it), `!' (a session changed a file another one changed too, or wrote
outside its write scope), `Model' (model and effort, shown when the
sessions listed differ in them; the header always shows them),
`Tokens' (used so far, in/out) and `Tree' (whether a session's own
work tree is merged yet).

\\{my-codex-list-mode-map}"
  (setq tabulated-list-padding 1)
  (setq tabulated-list-sort-key nil)
  (add-hook 'tabulated-list-revert-hook #'my-codex--list-refresh nil t)
  (my-codex--list-set-format (my-codex--list-columns nil)))

(defconst my-codex--list-column-specs
  '((number "#" 2 :right-align t) (project "Project" 12) (name "Name" 14) (marks "!" 1)
    (status "Status" 11) (elapsed "Elapsed" 7 :right-align t) (model "Model" 18)
    (tokens "Tokens" 9 :right-align t) (tree "Tree" 8) (headline "Headline" 0))
  "Every column the session list may show: key, title, width and properties.")

(defun my-codex--list-columns (sessions)
  "Return the keys of the columns that say something about SESSIONS."
  (cl-remove-if-not
   (lambda (key)
     (pcase key
       ('project (null my-codex--list-project))
       ('marks (seq-some (lambda (s) (> (length (plist-get s :overlaps)) 0)) sessions))
       ;; The same model on every row says nothing: the header shows it.
       ('model (cdr (seq-uniq (seq-remove #'string-empty-p (mapcar #'my-codex--model sessions)))))
       ('tokens (seq-some (lambda (s) (not (string-empty-p (my-codex--usage s)))) sessions))
       ('tree (seq-some #'my-codex--tree sessions))
       (_ t)))
   (mapcar #'car my-codex--list-column-specs)))

(defvar-local my-codex--list-shown-columns nil
  "The keys of the columns the current list buffer shows.")

(defun my-codex--list-set-format (columns)
  "Make the current list buffer show COLUMNS, keys of the column specs."
  (unless (equal columns my-codex--list-shown-columns)
    (setq my-codex--list-shown-columns columns)
    (setq tabulated-list-format
          (vconcat (mapcar (lambda (key)
                             (let ((spec (alist-get key my-codex--list-column-specs)))
                               (append (list (nth 0 spec) (nth 1 spec) nil) (nthcdr 2 spec))))
                           columns)))
    (tabulated-list-init-header)
    (setq header-line-format (list header-line-format '(:eval (my-codex--limits-text))))))

(defun my-codex--list-cell (key session number)
  "Return the text of the column KEY for SESSION, numbered NUMBER (or nil)."
  (let ((status (plist-get session :status)))
    (pcase key
      ('number (if number (number-to-string number) ""))
      ('project (or (plist-get (plist-get session :project) :name) ""))
      ('name (plist-get session :name))
      ('marks (let ((overlaps (append (plist-get session :overlaps) nil)))
                (if overlaps
                    (propertize "!" 'face 'my-codex-approval-face
                                'help-echo (string-join overlaps "\n"))
                  "")))
      ('status (propertize status 'face (my-codex--status-face status)))
      ('elapsed (my-codex--elapsed session))
      ('model (my-codex--model session))
      ('tokens (my-codex--usage session))
      ('tree (cond ((null (my-codex--tree session)) "")
                   ((my-codex--unmerged-p session)
                    (propertize "unmerged" 'face 'my-codex-approval-face
                                'help-echo (plist-get (my-codex--tree session) :path)))
                   (t "merged")))
      ('headline (let ((headline (or (plist-get session :headline) "")))
                   (pcase status
                     ("waiting" (propertize headline 'face 'my-codex-approval-face))
                     ("failed" (propertize headline 'face 'my-codex-error-face))
                     (_ headline)))))))

(defun my-codex--list-sessions-shown ()
  "Return the sessions to show in the current list buffer, in list order."
  (my-codex--cached my-codex--list-project
                    (unless my-codex--list-show-stopped #'my-codex--listed-p)))

(defun my-codex--list-entries ()
  "Return the `tabulated-list-entries' of the current list buffer.
The columns follow what the sessions shown have to say."
  (let* ((numbers (my-codex--numbers))
         (sessions (my-codex--list-sessions-shown))
         (columns (my-codex--list-columns sessions)))
    (my-codex--list-set-format columns)
    (mapcar (lambda (session)
              (let ((number (gethash (plist-get session :id) numbers)))
                (list (plist-get session :id)
                      (vconcat (mapcar (lambda (key) (my-codex--list-cell key session number))
                                       columns)))))
            sessions)))

(defun my-codex--list-render ()
  "Show the sessions of the current list buffer from what Emacs knows."
  (setq tabulated-list-entries (my-codex--list-entries))
  (setq mode-line-process
        (concat (if my-codex--list-project
                    (concat " " (file-name-nondirectory my-codex--list-project))
                  " every project")
                (if my-codex--list-show-stopped " +stopped" "")
                (my-codex--connection-note)))
  (tabulated-list-print t))

(defvar my-codex--limits nil
  "The account's rate limits as Codex last reported them, or nil.")

(defvar my-codex--limits-time nil
  "When `my-codex--limits' was last asked for, as a float time, or nil.")

(defun my-codex--fetch-limits (&optional force)
  "Ask the sidecar for the account's rate limits, without waiting.
Unless FORCE, not when they were asked for in the last five minutes."
  (when (or force (null my-codex--limits-time)
            (> (- (float-time) my-codex--limits-time) 300))
    (setq my-codex--limits-time (float-time))
    (my-codex--async "codex/account/limits" nil
                     (lambda (result)
                       (setq my-codex--limits (plist-get result :limits))
                       (force-mode-line-update t))
                     #'ignore)))

(defun my-codex--limits-text (&optional limits)
  "Return the list header's account LIMITS, by default the last known, or \"\".
LIMITS is Codex's rate-limit snapshot: windows `primary' and
`secondary', each with `usedPercent' and `windowDurationMins'."
  (let* ((limits (or limits my-codex--limits))
         (windows
          (delq nil
                (mapcar (lambda (key)
                          (let ((window (plist-get limits key)))
                            (when (and (listp window) (numberp (plist-get window :usedPercent)))
                              (format "%s %d%%"
                                      (my-codex--window-words (plist-get window :windowDurationMins))
                                      (plist-get window :usedPercent)))))
                        '(:primary :secondary)))))
    (if windows
        (propertize (concat "  limits used: " (string-join windows ", "))
                    'face 'my-codex-status-face)
      "")))

(defun my-codex--window-words (minutes)
  "Return a rate-limit window of MINUTES in a few characters: 5h, 7d."
  (cond ((not (numberp minutes)) "now")
        ((and (>= minutes 1440) (zerop (% minutes 1440))) (format "%dd" (/ minutes 1440)))
        ((and (>= minutes 60) (zerop (% minutes 60))) (format "%dh" (/ minutes 60)))
        (t (format "%dm" minutes))))

(defun my-codex--list-refresh ()
  "Show what Emacs knows at once, and ask the sidecar again without waiting."
  (setq tabulated-list-entries (my-codex--list-entries))
  (my-codex--reload)
  (my-codex--fetch-limits t))

;;;###autoload
(defun my-codex-list-sessions (&optional all-projects)
  "List the Codex sessions of the current project, kept up to date.
With ALL-PROJECTS (interactively, a prefix argument), list every
project's sessions.  The list shows at once; it never waits for the
sidecar.  Return the list buffer."
  (interactive "P")
  (let ((project (unless all-projects (my-codex--root-key (my-codex--project))))
        (buf (get-buffer-create "*codex sessions*")))
    (my-codex--connect)
    (with-current-buffer buf
      (unless (derived-mode-p 'my-codex-list-mode)
        (my-codex-list-mode))
      (setq my-codex--list-project project)
      (when project (setq default-directory (file-name-as-directory project)))
      (my-codex--list-render))
    (my-codex--fetch-limits)
    (my-codex--show buf t)
    buf))

(defun my-codex--list-session ()
  "Return the session on the current list line."
  (or (my-codex--current-session) (user-error "No session on this line")))

(defun my-codex-list-visit ()
  "Show the buffer of the session on this line."
  (interactive)
  (my-codex-switch-session (my-codex--list-session)))

(defun my-codex-list-kill ()
  "Kill the session on this line."
  (interactive)
  (my-codex-kill-session (my-codex--list-session)))

(defun my-codex-list-kill-all ()
  "Kill every live session of the project of this line, after asking once."
  (interactive)
  (let* ((session (my-codex--list-session))
         (root (plist-get (plist-get session :project) :root)))
    (when (yes-or-no-p (format "Kill every Codex session of %s? "
                               (abbreviate-file-name root)))
      (my-codex-kill-all-sessions nil root))))

(defun my-codex-list-rename (new-name)
  "Rename the session on this line to NEW-NAME."
  (interactive (list (read-string (format "Rename %s to: "
                                          (plist-get (my-codex--list-session) :name)))))
  (my-codex-rename-session new-name (my-codex--list-session)))

(defun my-codex-list-cancel ()
  "Cancel the running turn of the session on this line."
  (interactive)
  (my-codex-cancel (my-codex--list-session)))

(defun my-codex-list-report ()
  "Show the report of the session on this line."
  (interactive)
  (my-codex-session-report (my-codex--list-session))
  (display-buffer "*my-codex report*"))

(defun my-codex-list-toggle-stopped ()
  "Show or hide stopped sessions in this list."
  (interactive)
  (setq my-codex--list-show-stopped (not my-codex--list-show-stopped))
  (my-codex--list-render)
  (message (if my-codex--list-show-stopped "Showing stopped sessions"
             "Hiding stopped sessions")))

;;;; What waits on the user

(defvar my-codex-pending-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "RET") #'my-codex-pending-visit)
    (define-key map (kbd "a") #'my-codex-accept)
    (define-key map (kbd "s") #'my-codex-accept-for-session)
    (define-key map (kbd "d") #'my-codex-decline)
    (define-key map (kbd "e") #'my-codex-edit-prompt)
    map)
  "Keymap of the buffer of what waits on the user.")

(define-derived-mode my-codex-pending-mode tabulated-list-mode "Codex Pending"
  "Major mode listing what Codex sessions wait on you, in every project.
It follows the sessions as they change.

\\{my-codex-pending-mode-map}"
  (setq tabulated-list-format
        [("Project" 14 nil) ("Name" 16 nil) ("Kind" 12 nil) ("Waits on" 0 nil)])
  (setq tabulated-list-padding 1)
  (setq tabulated-list-sort-key nil)
  (add-hook 'tabulated-list-revert-hook #'my-codex--pending-refresh nil t)
  (tabulated-list-init-header))

(defun my-codex--pending-entries ()
  "Return the `tabulated-list-entries' of what waits on the user."
  (mapcar (lambda (pair)
            (let ((session (car pair)) (request (cdr pair)))
              (list (cons (plist-get session :id) (plist-get request :requestId))
                    (vector (or (plist-get (plist-get session :project) :name) "")
                            (plist-get session :name)
                            (or (plist-get request :kind) "")
                            (propertize (my-codex--first-line
                                         (format "%s" (my-codex--request-text request)))
                                        'face 'my-codex-approval-face)))))
          (my-codex--pending-requests)))

(defun my-codex--pending-render ()
  "Show what waits on the user from what Emacs knows."
  (setq tabulated-list-entries (my-codex--pending-entries))
  (setq mode-line-process (my-codex--connection-note))
  (tabulated-list-print t))

(defun my-codex--pending-refresh ()
  "Show what Emacs knows at once, and ask the sidecar again without waiting."
  (setq tabulated-list-entries (my-codex--pending-entries))
  (my-codex--reload))

;;;###autoload
(defun my-codex-pending ()
  "List what Codex sessions wait on you, in every project.
Answer with \\<my-codex-pending-mode-map>\\[my-codex-accept], \\[my-codex-accept-for-session] or \\[my-codex-decline]; \\[my-codex-pending-visit] visits the session.
A prompt rewritten by learn mode (kind `promptReview') is answered
with \\[my-codex-accept] (send the rewrite), \\[my-codex-edit-prompt] (edit it) or \\[my-codex-decline] (send yours);
\\[my-codex-pending-visit] shows it as a diff.
Return the buffer."
  (interactive)
  (my-codex--connect)
  (let ((buf (get-buffer-create "*codex pending*")))
    (with-current-buffer buf
      (unless (derived-mode-p 'my-codex-pending-mode)
        (my-codex-pending-mode))
      (my-codex--pending-render))
    (my-codex--show buf)
    (when (and my-codex--sessions-loaded (null (my-codex--pending-requests)))
      (message "Nothing waits on you"))
    buf))

(defun my-codex-pending-visit ()
  "Show the session of this line at its request; a rewritten prompt, as a diff."
  (interactive)
  (let* ((line (or (tabulated-list-get-id) (user-error "No request on this line")))
         (session (gethash (car line) my-codex--sessions)))
    (if (my-codex--prompt-review-p (my-codex--pending-request session (cdr line)))
        (my-codex-prompt-review (cdr line) session)
      (with-current-buffer (my-codex-switch-session session)
        (goto-char (point-min))
        (when-let ((match (text-property-search-forward 'my-codex-request (cdr line) t)))
          (goto-char (prop-match-beginning match)))))))

;;;; Notes, learn mode and the prompt review

(defun my-codex--switch-on-p (arg current)
  "Return non-nil to turn a thing on, given ARG as a minor mode takes it.
No ARG (or `toggle') switches from CURRENT, the thing's state; a
positive ARG turns it on, zero or negative off."
  (if (or (null arg) (eq arg 'toggle))
      (not current)
    (> (prefix-numeric-value arg) 0)))

(defun my-codex--learning-p (session)
  "Return non-nil when SESSION is in learn mode."
  (let ((learn (plist-get session :learn)))
    (and (listp learn) (eq (plist-get learn :on) t))))

;;;###autoload
(defun my-codex-toggle-notes (&optional arg session)
  "Turn SESSION's notetaker on or off; return the session.
With no ARG (interactively, no prefix argument) switch it; a positive
ARG turns it on, zero or negative off.  Outside a session buffer or
the list, choose among the project's sessions.  With notes on, after
each turn the notetaker, a hidden read-only Codex conversation, notes
what the turn did, the gap it saw and the takeaway in the project's
learnings (\\[my-codex-learnings]); it spends model tokens.  Turning
notes off ends learn mode too."
  (interactive (list current-prefix-arg (my-codex--read-session "Notes for Codex session: " t)))
  (let* ((session (my-codex--session session))
         (on (my-codex--switch-on-p arg (eq (plist-get session :notes) t)))
         (learning (my-codex--learning-p session))
         (session (my-codex--switch-notes "codex/session/notes" session on)))
    (message "Codex %s: %s" (my-codex--label session)
             (cond (on (substitute-command-keys
                        "notes on; after each turn a note goes to the project's learnings (\\[my-codex-learnings])"))
                   (learning "notes off, and learn mode with them")
                   (t "notes off")))
    session))

;;;###autoload
(defun my-codex-toggle-learn (&optional arg session)
  "Turn SESSION's learn mode on or off; return the session.
In learn mode, each prompt you send is first rewritten by the
notetaker with what the project learned in earlier turns and
sessions, and waits for your review: accept the rewrite, edit it,
or send your prompt as typed (see `my-codex-prompt-review').  Learn
mode turns notes on; it ends by itself once the notetaker sees every
gap it noted in the session resolved.  With no ARG (interactively,
no prefix argument) switch it; a positive ARG turns it on, zero or
negative off.  Outside a session buffer or the list, choose among
the project's sessions."
  (interactive (list current-prefix-arg (my-codex--read-session "Learn mode for Codex session: " t)))
  (let* ((session (my-codex--session session))
         (on (my-codex--switch-on-p arg (my-codex--learning-p session)))
         (session (my-codex--switch-notes "codex/session/learn" session on)))
    (message "Codex %s: %s" (my-codex--label session)
             (if on
                 "learn mode on; each prompt is rewritten with what the project learned, for your review"
               (substitute-command-keys
                "learn mode off; notes stay on (\\[my-codex-toggle-notes] turns them off)")))
    session))

(defun my-codex--switch-notes (method session on)
  "Send METHOD, notes or learn, to turn it ON for SESSION; return the session."
  (my-codex--remember
   (plist-get (my-codex--request method (append (my-codex--ref session)
                                                (list :on (if on t :json-false))))
              :session)))

;;;###autoload
(defun my-codex-learnings (&optional project)
  "Open the learnings of PROJECT, by default the current project.
That is its learnings.md: the notetaker's notes of every session of
the project that had notes on, oldest first, each with the gap it saw
and the takeaway, and the closing summaries of killed sessions.  The
sidecar rewrites the file with each note, so the buffer is read-only
and follows it; point goes to the newest note.  When there is no
note yet, say so.  Return the buffer."
  (interactive)
  (let* ((project (or project (my-codex--project)))
         (result (my-codex--request "codex/project/learnings" (list :project project :limit 1)))
         (name (plist-get (plist-get result :project) :name))
         (path (plist-get result :path)))
    (when (seq-empty-p (plist-get result :entries))
      (user-error "No learnings in %s yet: the notetaker notes each turn of a session with notes on (%s)"
                  name (substitute-command-keys "\\[my-codex-toggle-notes]")))
    (let ((buf (if (and (stringp path) (file-exists-p path))
                   (my-codex--visit-learnings path)
                 (my-codex--learnings-text-buffer project name))))
      (pop-to-buffer buf)
      (goto-char (point-max))
      (re-search-backward "^## " nil t)
      buf)))

(defun my-codex--visit-learnings (path)
  "Return a read-only buffer visiting the learnings file PATH, up to date."
  (let ((buf (find-buffer-visiting path)))
    (if buf
        (with-current-buffer buf
          (unless (or (buffer-modified-p) (verify-visited-file-modtime buf))
            (revert-buffer t t t)))
      (setq buf (find-file-noselect path)))
    (with-current-buffer buf
      (setq buffer-read-only t)
      ;; The sidecar rewrites the file with each note.
      (add-hook 'after-revert-hook (lambda () (setq buffer-read-only t)) nil t)
      (auto-revert-mode 1))
    buf))

(defun my-codex--learnings-text-buffer (project name)
  "Return a buffer with the learnings of PROJECT, named NAME.
As the sidecar renders them: for when it could not write learnings.md."
  (let ((text (plist-get (my-codex--request "codex/project/learnings" (list :project project))
                         :text)))
    (with-current-buffer (get-buffer-create (format "*codex learnings: %s*" name))
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert (or text "")))
      (special-mode)
      (current-buffer))))

(defun my-codex--visit-note (root source)
  "Show the note SOURCE, a learning a rewrite drew on, in the learnings of ROOT."
  (let ((buf (my-codex-learnings root))
        (turn-id (plist-get source :turnId)))
    (with-current-buffer buf
      (goto-char (point-min))
      (unless (if (and (equal (plist-get source :kind) "turn") (stringp turn-id))
                  (and (search-forward (concat "- Turn id: " turn-id) nil t)
                       (re-search-backward "^## " nil t))
                (re-search-forward (format "^## %s · Closing summary"
                                           (regexp-quote (or (plist-get source :sessionName) "")))
                                   nil t))
        (goto-char (point-max))
        (message "That note is not in the learnings any more")))
    (when-let ((win (get-buffer-window buf)))
      (set-window-point win (with-current-buffer buf (point))))
    buf))

;;;;; The prompt review: the original and the rewrite as a diff

(defvar my-codex-review-mode-map
  (let ((map (make-sparse-keymap)))
    ;; diff-mode's keys for moving about, and special-mode's q and g.
    (set-keymap-parent map diff-mode-shared-map)
    (define-key map (kbd "a") #'my-codex-accept)
    (define-key map (kbd "e") #'my-codex-edit-prompt)
    (define-key map (kbd "d") #'my-codex-decline)
    (define-key map (kbd "c") #'my-codex-review-cancel)
    (define-key map (kbd "C-c C-a") #'my-codex-accept)
    (define-key map (kbd "C-c C-e") #'my-codex-edit-prompt)
    (define-key map (kbd "C-c C-d") #'my-codex-decline)
    (define-key map (kbd "C-c C-k") #'my-codex-review-cancel)
    (define-key map (kbd "RET") #'my-codex-review-help)
    map)
  "Keymap of a prompt review, over `diff-mode''s keys for moving about.")

(define-derived-mode my-codex-review-mode diff-mode "Codex-Review"
  "Major mode of a prompt that learn mode rewrote, for your review.
Your prompt and the notetaker's rewrite are shown as a unified diff
\(`--- original', `+++ rewrite'), below the earlier learnings the
rewrite drew on; each of those is a button to its note in the
project's learnings, and `[turn]' to its turn in its session.
\\<my-codex-review-mode-map>\\[my-codex-accept] sends the rewrite, \\[my-codex-edit-prompt] edits it in a buffer of its own first, \\[my-codex-decline]
sends your prompt as you typed it, \\[my-codex-review-cancel] sends nothing (your prompt goes back to
the session buffer's prompt), and \\[quit-window] leaves the decision for later (it
waits in \\[my-codex-pending]).  `diff-mode''s keys move between hunks.

\\{my-codex-review-mode-map}"
  (setq buffer-read-only t)
  ;; diff-mode's keys for read-only buffers come first: put these before them.
  (setq-local minor-mode-overriding-map-alist
              (cons (cons 'buffer-read-only my-codex-review-mode-map)
                    (assq-delete-all 'buffer-read-only
                                     (copy-alist minor-mode-overriding-map-alist))))
  (setq-local header-line-format '(:eval (my-codex--review-header)))
  (setq-local revert-buffer-function #'my-codex--review-revert)
  (setq-local truncate-lines nil)
  (setq-local word-wrap t))

(defun my-codex--review-still-pending ()
  "Return the session of this review buffer while its request waits, else nil."
  (when-let ((session (gethash (car my-codex--review) my-codex--sessions)))
    (and (my-codex--pending-request session (plist-get (cdr my-codex--review) :requestId))
         session)))

(defun my-codex--review-header ()
  "Return the header line of a prompt review or edit buffer."
  (let ((session (my-codex--review-still-pending))
        (label (my-codex--label-of (car my-codex--review))))
    (cond ((null session)
           (propertize (format " %s  no longer waits: this prompt was answered" label)
                       'face 'my-codex-status-face))
          ((derived-mode-p 'my-codex-prompt-edit-mode)
           (format " %s  C-c C-c sends this prompt, C-c C-k leaves it unsent (the review waits)"
                   label))
          (t (format " %s  a send the rewrite  e edit it  d send yours  c send nothing  q later"
                     label)))))

(defun my-codex-review-help ()
  "Say which keys answer the prompt review."
  (interactive)
  (if (button-at (point))
      (push-button)
    (message "a sends the rewrite, e edits it, d sends your prompt as typed, c sends nothing, q decides later")))

(defun my-codex--review-buffer-name (session)
  "Return the name of the prompt review buffer of SESSION."
  (format "*codex review: %s*" (my-codex--label session)))

(defun my-codex--review-at-hand (request-id session prompt)
  "Return (SESSION . REQUEST), the rewritten prompt the user means.
REQUEST-ID and SESSION say it when given; else the buffer or line at
hand does (a review or edit buffer, a line of the inbox or the list,
a session buffer); else it is read with PROMPT among every rewritten
prompt that waits."
  (let* ((at-hand (my-codex--request-at-hand request-id session))
         (session (car at-hand))
         (request-id (cdr at-hand)))
    (if (null session)
        (my-codex--read-pending prompt #'my-codex--prompt-review-p)
      (let ((request (if request-id
                         (my-codex--pending-request session request-id)
                       (seq-find #'my-codex--prompt-review-p (plist-get session :pending)))))
        (unless request
          (user-error "Codex %s has no rewritten prompt waiting for you" (my-codex--label session)))
        (unless (my-codex--prompt-review-p request)
          (user-error "Codex %s waits for an approval, not a rewritten prompt: accept or decline it"
                      (my-codex--label session)))
        (cons session request)))))

;;;###autoload
(defun my-codex-prompt-review (&optional request-id session)
  "Show the prompt that learn mode rewrote, REQUEST-ID of SESSION, as a diff.
It opens by itself when the rewrite arrives for a session you have
in view.  In a session buffer, it is that session's; on a line of
\\[my-codex-pending] or of the list, that line's; elsewhere choose among
every rewritten prompt that waits.  See `my-codex-review-mode' for
the keys.  Return the buffer."
  (interactive)
  (let ((pair (my-codex--review-at-hand request-id session "Review the rewritten prompt of")))
    (my-codex--show-review (car pair) (cdr pair) t)))

(defun my-codex--show-review (session request select)
  "Show REQUEST, a prompt review of SESSION, in its buffer; SELECT its window.
Return the buffer."
  (let ((buf (get-buffer-create (my-codex--review-buffer-name session))))
    (with-current-buffer buf
      (unless (derived-mode-p 'my-codex-review-mode)
        (my-codex-review-mode))
      (unless (and (equal (car my-codex--review) (plist-get session :id))
                   (equal (plist-get (cdr my-codex--review) :requestId)
                          (plist-get request :requestId)))
        (my-codex--review-fill session request)))
    (if select (pop-to-buffer buf) (display-buffer buf))
    buf))

(defun my-codex--review-fill (session request)
  "Fill the current buffer with REQUEST, a prompt review of SESSION."
  (let* ((inhibit-read-only t)
         (root (plist-get (plist-get session :project) :root))
         (sources (append (plist-get request :sources) nil))
         (diff (or (plist-get request :diff) "")))
    (setq my-codex--review (cons (plist-get session :id) request)
          my-codex--buffer-project root)
    (when (and root (file-directory-p root))
      (setq default-directory (file-name-as-directory root)))
    (erase-buffer)
    (insert (propertize (format "Learn mode rewrote your prompt to %s (%s): accept, edit or decline.\n"
                                (my-codex--label session) (plist-get request :requestId))
                        'font-lock-face 'my-codex-heading-face))
    (if (null sources)
        (insert "It drew on no earlier learning of the project.\n")
      (insert "It drew on what the project learned earlier (RET on one shows its note):\n")
      (dolist (source sources)
        (my-codex--insert-source root source)))
    (insert "\n" diff)
    (unless (string-suffix-p "\n" diff) (insert "\n"))
    (set-buffer-modified-p nil)
    (goto-char (point-min))
    (when (re-search-forward "^@@" nil t)
      (goto-char (match-beginning 0)))))

(defun my-codex--insert-source (root source)
  "Insert SOURCE, a learning of the project ROOT, as buttons to its note and turn."
  (insert "  ")
  (insert-text-button (or (plist-get source :line) "")
                      'action (lambda (_button) (my-codex--visit-note root source))
                      'help-echo "Show this note in the project's learnings"
                      'follow-link t)
  (let ((id (plist-get source :sessionId))
        (turn (plist-get source :turn)))
    (when (and (equal (plist-get source :kind) "turn") (numberp turn)
               (gethash id my-codex--sessions))
      (insert " ")
      (insert-text-button "[turn]"
                          'action (lambda (_button) (my-codex--visit-turn id turn))
                          'help-echo (format "Show turn %d of session %s" turn
                                             (plist-get source :sessionName))
                          'follow-link t)))
  (insert "\n"))

(defun my-codex--review-revert (&rest _)
  "Show the current review again from what Emacs knows."
  (if-let ((session (my-codex--review-still-pending)))
      (my-codex--review-fill session (my-codex--pending-request
                                      session (plist-get (cdr my-codex--review) :requestId)))
    (message "This rewritten prompt no longer waits: it was answered")))

(defun my-codex--review-arrived (id request)
  "Show REQUEST, a prompt review of the session ID that is in view.
Its window is selected when the session's buffer is the selected one."
  (let ((session (gethash id my-codex--sessions))
        (buf (my-codex--buffer-of id)))
    (when (and session (my-codex--pending-request session (plist-get request :requestId)))
      (let ((select (and buf (eq (window-buffer (selected-window)) buf))))
        (my-codex--show-review session request select)
        (unless select
          (message "Codex %s: learn mode rewrote your prompt; review it in %s"
                   (my-codex--label session) (my-codex--review-buffer-name session)))))))

(defun my-codex--review-answered (session request decision)
  "Close the buffers of REQUEST, a prompt review of SESSION, now answered.
DECISION is the answer.  On `cancel', the prompt goes back to the
session buffer's prompt."
  (let* ((id (plist-get session :id))
         (request-id (plist-get request :requestId))
         (from-review (and my-codex--review (equal (car my-codex--review) id))))
    (dolist (buf (buffer-list))
      (when (and (memq (buffer-local-value 'major-mode buf)
                       '(my-codex-review-mode my-codex-prompt-edit-mode))
                 (let ((review (buffer-local-value 'my-codex--review buf)))
                   (and (equal (car review) id)
                        (equal (plist-get (cdr review) :requestId) request-id))))
        (dolist (win (get-buffer-window-list buf nil t))
          (quit-window nil win))
        (kill-buffer buf)))
    (when-let ((win (and from-review (my-codex--buffer-of id)
                         (get-buffer-window (my-codex--buffer-of id)))))
      (select-window win))
    (if (equal decision "cancel")
        (my-codex--restore-prompt session (plist-get request :original))
      (message "Codex %s: %s" (my-codex--label session)
               (pcase decision
                 ("accept" "the rewrite is sent")
                 ("edit" "your edit is sent")
                 ("decline" "your prompt is sent as you typed it")
                 (_ decision))))))

(defun my-codex--restore-prompt (session text)
  "Put TEXT, a prompt that was not sent, back at the prompt of SESSION's buffer.
When something is typed there already, TEXT goes to the kill ring."
  (when (stringp text)
    (with-current-buffer (my-codex--open-buffer session)
      (if (string-empty-p (my-codex--prompt-text))
          (progn (my-codex--set-prompt text)
                 (message "Codex %s: nothing sent; your prompt is back at the prompt of %s"
                          (my-codex--label session) (buffer-name)))
        (kill-new text)
        (message "Codex %s: nothing sent; your prompt is in the kill ring (C-y yanks it)"
                 (my-codex--label session))))))

(defun my-codex-review-cancel ()
  "Send nothing for the prompt under review; put it back at the session's prompt."
  (interactive)
  (my-codex-respond "cancel"))

;;;;; Editing the rewrite before it is sent

(defvar my-codex-prompt-edit-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-c C-c") #'my-codex-prompt-edit-send)
    (define-key map (kbd "C-c C-k") #'my-codex-prompt-edit-abort)
    map)
  "Keymap of the buffer where a rewritten prompt is edited.")

(define-derived-mode my-codex-prompt-edit-mode text-mode "Codex-Edit"
  "Major mode for editing a prompt that learn mode rewrote, before it is sent.
\\<my-codex-prompt-edit-mode-map>\\[my-codex-prompt-edit-send] sends the text as it is here (trimmed); \\[my-codex-prompt-edit-abort] closes the
buffer without sending: the review still waits.

\\{my-codex-prompt-edit-mode-map}"
  (setq-local header-line-format '(:eval (my-codex--review-header))))

;;;###autoload
(defun my-codex-edit-prompt (&optional request-id session)
  "Edit the prompt that learn mode rewrote, REQUEST-ID of SESSION, then send it.
The rewrite opens in a buffer of its own: change it as you like,
then \\<my-codex-prompt-edit-mode-map>\\[my-codex-prompt-edit-send] sends it and \\[my-codex-prompt-edit-abort] leaves it unsent.  The
rewritten prompt is found as `my-codex-prompt-review' finds it.
Return the buffer."
  (interactive)
  (let* ((pair (my-codex--review-at-hand request-id session "Edit the rewritten prompt of"))
         (session (car pair))
         (request (cdr pair))
         (buf (get-buffer-create (format "*codex edit: %s*" (my-codex--label session)))))
    (with-current-buffer buf
      (unless (and (derived-mode-p 'my-codex-prompt-edit-mode)
                   (equal (car my-codex--review) (plist-get session :id))
                   (equal (plist-get (cdr my-codex--review) :requestId)
                          (plist-get request :requestId)))
        (my-codex-prompt-edit-mode)
        (setq my-codex--review (cons (plist-get session :id) request)
              my-codex--buffer-project (plist-get (plist-get session :project) :root))
        (let ((inhibit-read-only t))
          (erase-buffer)
          (insert (or (plist-get request :augmented) "")))
        (setq buffer-undo-list nil)
        (set-buffer-modified-p nil)
        (goto-char (point-min))))
    (pop-to-buffer buf)
    buf))

(defun my-codex-prompt-edit-send ()
  "Send the prompt edited in this buffer, instead of the rewrite or the original."
  (interactive)
  (let* ((text (string-trim (buffer-substring-no-properties (point-min) (point-max))))
         (label (my-codex--label-of (car my-codex--review)))
         (session (my-codex--review-still-pending)))
    (when (string-empty-p text)
      (user-error "Nothing to send: the prompt is empty (C-c C-k leaves it unsent)"))
    (unless session
      (user-error "Codex %s no longer waits on this prompt (it was answered); your text stays here"
                  label))
    (my-codex-respond "edit" (plist-get (cdr my-codex--review) :requestId) session text)))

(defun my-codex-prompt-edit-abort ()
  "Close this buffer without sending: the rewritten prompt still waits for you."
  (interactive)
  (let* ((id (car my-codex--review))
         (session (gethash id my-codex--sessions))
         (review (and session (get-buffer (my-codex--review-buffer-name session)))))
    (quit-window t)
    (when-let ((win (and review (get-buffer-window review))))
      (select-window win))
    (message "Not sent: the rewritten prompt of %s still waits for you" (my-codex--label-of id))))

;;;; A keymap for every command

;;;###autoload
(defvar my-codex-command-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "s") #'my-codex-start-session)
    (define-key map (kbd "b") #'my-codex-switch-session)
    (define-key map (kbd "l") #'my-codex-list-sessions)
    (define-key map (kbd "a") #'my-codex-pending)
    (define-key map (kbd "m") #'my-codex-send)
    (define-key map (kbd "w") #'my-codex-send-region)
    (define-key map (kbd "f") #'my-codex-send-file)
    (define-key map (kbd "c") #'my-codex-cancel)
    (define-key map (kbd "k") #'my-codex-kill-session)
    (define-key map (kbd "K") #'my-codex-kill-all-sessions)
    (define-key map (kbd "r") #'my-codex-rename-session)
    (define-key map (kbd "R") #'my-codex-session-report)
    (define-key map (kbd "u") #'my-codex-resume-session)
    (define-key map (kbd "D") #'my-codex-forget-session)
    (define-key map (kbd "e") #'my-codex-show-events)
    (define-key map (kbd "E") #'my-codex-show-stderr)
    (define-key map (kbd "S") #'my-codex-start-session-with-options)
    (define-key map (kbd "=") #'my-codex-diff)
    (define-key map (kbd "M") #'my-codex-merge-session)
    (define-key map (kbd "X") #'my-codex-discard-session)
    (define-key map (kbd "F") #'my-codex-fork-session)
    (define-key map (kbd "v") #'my-codex-review)
    (define-key map (kbd "A") #'my-codex-adopt-thread)
    (define-key map (kbd "T") #'my-codex-tui)
    (define-key map (kbd "n") #'my-codex-toggle-notes)
    (define-key map (kbd "L") #'my-codex-toggle-learn)
    (define-key map (kbd "N") #'my-codex-learnings)
    (define-key map (kbd "p") #'my-codex-prompt-review)
    (dotimes (n 10)
      (define-key map (kbd (number-to-string n))
                  (intern (format "my-codex-switch-to-session-%d" n))))
    map)
  "Keymap of every my-codex command, to bind under a prefix key.")
;;;###autoload
(defalias 'my-codex-command-map my-codex-command-map)

(provide 'my-codex)
;;; my-codex.el ends here
