;;; my-codex.el --- Named Codex sessions per project, run by codex-sessions  -*- lexical-binding: t; -*-

;; Copyright (C) 2026 The codex-sessions authors

;; Author: The codex-sessions authors
;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1"))
;; Keywords: tools, processes, convenience

;; This file is not part of GNU Emacs.

;; Permission is hereby granted, free of charge, to any person obtaining a
;; copy of this software, to deal in it without restriction, under the
;; terms of the MIT license that comes with codex-sessions.

;;; Commentary:

;; A thin Emacs client of the codex-sessions sidecar (`codex-sessions
;; serve'), which runs named OpenAI Codex sessions per project.  The
;; sidecar owns names, buffer names, statuses, transcripts and reports;
;; this file renders them and sends commands over the built-in
;; `jsonrpc.el'.
;;
;; Start with \\[my-codex-start-session].  Each session has a buffer named
;; as the sidecar says, e.g. *codex:ultra:main:1a2b3c4d*, which shows the
;; conversation as it streams and takes the next prompt at its end.
;; \\[my-codex-list-sessions] lists sessions; `my-codex-command-map' holds
;; every command for binding under a prefix key of your choice.

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

(defconst my-codex-version "0.1.0"
  "The version of my-codex.el.")

;;;; Configuration

(defgroup my-codex nil
  "Named Codex sessions per project, run by the codex-sessions sidecar."
  :group 'tools
  :prefix "my-codex-")

(defcustom my-codex-sidecar-command '("codex-sessions" "serve")
  "The command that starts the sidecar, as a list of program and arguments."
  :type '(repeat string))

(defcustom my-codex-codex-command nil
  "The command that starts Codex, as a list; nil lets the sidecar choose.
The sidecar appends `app-server' to it.  When nil, the sidecar uses
the environment variable CODEX_SESSIONS_CODEX, else \"codex\"."
  :type '(choice (const :tag "The sidecar's default" nil) (repeat string)))

(defcustom my-codex-codex-extra-args nil
  "Extra arguments given to Codex before `app-server', such as \"-c\" \"k=v\".
They are appended to `my-codex-codex-command', or to the sidecar's
default Codex command when that is nil."
  :type '(repeat string))

(defcustom my-codex-state-directory nil
  "The folder where the sidecar keeps its records; nil lets the sidecar choose."
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
  "The live `my-codex-connection' to the sidecar, or nil.")

(defvar my-codex--shutting-down nil
  "Non-nil while the sidecar is being stopped on purpose.")

(defvar my-codex--sessions (make-hash-table :test #'equal)
  "Session id to the latest session plist the sidecar sent.")

(defvar my-codex--buffers (make-hash-table :test #'equal)
  "Session id to the buffer that shows it.")

(defvar my-codex--turn-starts (make-hash-table :test #'equal)
  "Session id to the time this Emacs saw its current turn start.")

(defvar my-codex--restarts nil
  "Times of recent automatic restarts of the sidecar.")

(defvar my-codex--handler-errors nil
  "Errors raised while handling notifications, most recent first.")

(defvar my-codex--tick-timer nil
  "Timer that redraws elapsed times while sessions run.")

(defvar my-codex--list-timer nil
  "Timer of a pending refresh of the session lists.")

(defvar my-codex--name-history nil
  "Minibuffer history of session names.")

(defvar my-codex--prompt-history nil
  "Minibuffer history of prompts.")

(defvar-local my-codex--session-id nil
  "The id of the session this buffer shows.")

(defvar-local my-codex--last-seq 0
  "The seq of the last transcript item in this buffer.")

(defvar-local my-codex--output-end nil
  "Marker where transcript items are inserted, before the prompt.")

(defvar-local my-codex--prompt-start nil
  "Marker where the user's prompt begins.")

(defvar-local my-codex--streams nil
  "Alist of item id to (START . END) markers of text still streaming.")

(defvar-local my-codex--resyncing nil
  "Non-nil while missing transcript items are being fetched.")

(defconst my-codex--active-statuses '("queued" "starting" "running" "waiting")
  "Statuses of a session whose turn or start is under way.")

;;;; Connection

(defclass my-codex-connection (jsonrpc-process-connection) ()
  :documentation "A JSON-RPC connection to the codex-sessions sidecar.")

(defun my-codex--initialization-options ()
  "Return the `initializationOptions' built from the user's options."
  (let ((options nil))
    (when my-codex-codex-command
      (setq options (plist-put options :codexCommand (vconcat my-codex-codex-command))))
    (when my-codex-codex-extra-args
      (setq options (plist-put options :codexArgs (vconcat my-codex-codex-extra-args))))
    (when my-codex-state-directory
      (setq options (plist-put options :stateDir
                               (expand-file-name my-codex-state-directory))))
    (or options (make-hash-table))))

(defun my-codex--start-sidecar ()
  "Start the sidecar, initialize it and return the connection."
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
    (let ((answer (my-codex--call
                   conn "initialize"
                   (list :processId (emacs-pid)
                         :clientInfo (list :name "my-codex" :version my-codex-version)
                         :capabilities (make-hash-table)
                         :initializationOptions (my-codex--initialization-options))
                   my-codex-request-timeout)))
      (when (eq (car answer) 'error)
        (let ((my-codex--shutting-down t))
          (ignore-errors (jsonrpc-shutdown conn)))
        (setq my-codex--connection nil)
        (user-error "The codex-sessions sidecar did not start: %s (see M-x my-codex-show-stderr)"
                    (my-codex--error-text (cdr answer) "initialize" my-codex-request-timeout))))
    (jsonrpc-notify conn :initialized (make-hash-table))
    (my-codex--install-mode-line)
    (my-codex--after-connect)
    conn))

(defun my-codex--ensure-connection ()
  "Return a live connection to the sidecar, starting the sidecar if needed."
  (if (and my-codex--connection (jsonrpc-running-p my-codex--connection))
      my-codex--connection
    (my-codex--start-sidecar)))

(defun my-codex--live-connection ()
  "Return the live connection, or nil without starting anything."
  (and my-codex--connection (jsonrpc-running-p my-codex--connection)
       my-codex--connection))

(defun my-codex--on-shutdown (conn)
  "Forget CONN, which has exited, and restart it if sessions are shown."
  (when (eq conn my-codex--connection)
    (setq my-codex--connection nil)
    (unless my-codex--shutting-down
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
  "Start the sidecar again after it died, reporting a failure as a message."
  (unless (my-codex--live-connection)
    (condition-case err
        (my-codex--ensure-connection)
      (error (message "codex-sessions could not restart: %s"
                      (error-message-string err))))))

(defun my-codex--after-connect ()
  "Learn the sessions from a new sidecar and bring every open buffer up to date."
  ;; What an earlier sidecar said no longer holds.
  (clrhash my-codex--sessions)
  (my-codex--async "codex/session/list" (list :project nil)
                   (lambda (result)
                     (seq-doseq (session (plist-get result :sessions))
                       (my-codex--remember session))
                     (force-mode-line-update t)))
  (dolist (buf (my-codex--session-buffers))
    (let ((id (buffer-local-value 'my-codex--session-id buf)))
      (my-codex--async "codex/session/get" (list :id id)
                       (lambda (result)
                         (my-codex--remember (plist-get result :session))))
      (with-current-buffer buf (my-codex--resync)))))

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
read as the answer are handled at once rather than on the next read."
  (let* ((answer nil)
         (quit t))
    (jsonrpc-async-request
     conn (intern method) (or params (make-hash-table))
     :success-fn (lambda (result) (setq answer (cons 'result result)))
     :error-fn (lambda (error) (setq answer (cons 'error error)))
     :timeout timeout
     :timeout-fn (lambda () (setq answer (list 'error :code 'timeout))))
    (unwind-protect
        (progn
          (while (not answer)
            (accept-process-output nil 0.05))
          (setq quit nil))
      (when quit
        (message "Stopped waiting for codex-sessions to answer %s" method)))
    answer))

(defun my-codex--error-text (error method timeout)
  "Return a sentence for ERROR, the JSON-RPC error answering METHOD.
TIMEOUT is how long the request was allowed to take."
  (let ((code (plist-get error :code))
        (text (plist-get error :message)))
    (cond ((eql code -1)
           "The codex-sessions sidecar exited; it restarts on next use (see M-x my-codex-show-stderr)")
          ((eq code 'timeout)
           (format "codex-sessions did not answer %s within %s seconds" method timeout))
          ((and (stringp text) (not (string-empty-p text))) text)
          (t (format "codex-sessions failed: %S" error)))))

(defun my-codex--request (method params &optional timeout)
  "Send METHOD with PARAMS to the sidecar and return its result.
Wait at most TIMEOUT seconds, by default `my-codex-request-timeout'.
Any failure becomes a `user-error' with the sidecar's message."
  (let* ((timeout (or timeout my-codex-request-timeout))
         (answer (my-codex--call (my-codex--ensure-connection) method params timeout)))
    (if (eq (car answer) 'result)
        (cdr answer)
      (user-error "%s" (my-codex--error-text (cdr answer) method timeout)))))

(defun my-codex--async (method params on-result)
  "Send METHOD with PARAMS to a live sidecar; call ON-RESULT with its result.
Failures are shown in the echo area.  Nothing is sent when the
sidecar is not running."
  (when-let ((conn (my-codex--live-connection)))
    (jsonrpc-async-request
     conn (intern method) (or params (make-hash-table))
     :success-fn on-result
     :error-fn (lambda (error)
                 (message "codex-sessions: %s" (plist-get error :message)))
     :timeout my-codex-request-timeout
     :timeout-fn (lambda ()
                   (message "codex-sessions did not answer %s in time" method)))))

;;;###autoload
(defun my-codex-shutdown ()
  "Stop the sidecar politely, which stops every Codex process it ran.
The sidecar keeps the records of every session."
  (interactive)
  (when-let ((conn (my-codex--live-connection)))
    (let ((my-codex--shutting-down t))
      (ignore-errors (my-codex--call conn "shutdown" nil 15))
      (ignore-errors (jsonrpc-notify conn :exit nil))
      (with-timeout (5 nil)
        (while (jsonrpc-running-p conn)
          (accept-process-output nil 0.05)))
      (ignore-errors (jsonrpc-shutdown conn))
      (setq my-codex--connection nil)))
  (force-mode-line-update t))

;;;###autoload
(defun my-codex-restart-sidecar ()
  "Stop the sidecar and start it again."
  (interactive)
  (my-codex-shutdown)
  (my-codex--ensure-connection)
  (message "codex-sessions restarted"))

(defun my-codex--kill-emacs ()
  "Stop the sidecar when Emacs exits."
  (ignore-errors (my-codex-shutdown)))

(add-hook 'kill-emacs-hook #'my-codex--kill-emacs)

;;;###autoload
(defun my-codex-show-events ()
  "Show the buffer of protocol traffic with the sidecar."
  (interactive)
  (let ((conn (or my-codex--connection (my-codex--ensure-connection))))
    (display-buffer (jsonrpc-events-buffer conn))))

;;;###autoload
(defun my-codex-show-stderr ()
  "Show the sidecar's standard error."
  (interactive)
  (let ((buf (or (and my-codex--connection (jsonrpc-stderr-buffer my-codex--connection))
                 (get-buffer " *my-codex stderr*"))))
    (unless (buffer-live-p buf)
      (user-error "The sidecar has not been started in this Emacs"))
    (display-buffer buf)))

;;;; Sessions, projects and names

(defun my-codex--project ()
  "Return the current project's root, or `default-directory', expanded."
  (expand-file-name
   (if-let ((project (project-current)))
       (project-root project)
     default-directory)))

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
    (let* ((id (plist-get session :id))
           (old (gethash id my-codex--sessions))
           (status (plist-get session :status)))
      (when (and (member status '("running" "waiting"))
                 (not (member (plist-get old :status) '("running" "waiting"))))
        (puthash id (current-time) my-codex--turn-starts))
      (puthash id session my-codex--sessions)
      (when-let ((buf (my-codex--buffer-of id)))
        (with-current-buffer buf (my-codex--follow-name session)))
      (my-codex--update-tick)))
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
  "Return non-nil when SESSION's Codex is run by this sidecar."
  (eq (plist-get session :live) t))

(defun my-codex--list (&optional project all)
  "Return the sessions of PROJECT (nil: every project) as a list.
With ALL, include stopped sessions."
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
           (gethash id my-codex--sessions)))))

(defun my-codex--session (session)
  "Return SESSION as a plist.
SESSION may be a plist, a name in the current project, or nil for
the current buffer's session or else the project's default one."
  (cond ((and session (listp session)) session)
        ((stringp session) (my-codex--get session))
        ((my-codex--current-session))
        (t (my-codex--get my-codex-default-session-name))))

(defun my-codex--label (session)
  "Return a short label for SESSION: its project and name."
  (format "%s/%s" (plist-get (plist-get session :project) :name)
          (plist-get session :name)))

(defun my-codex--read-session (prompt &optional all predicate ask)
  "Read one of the project's sessions with PROMPT and return its plist.
With ALL, offer stopped sessions too.  PREDICATE filters the
candidates.  In a session buffer or on a list line, return that
session without asking, unless ASK."
  (or (and (not ask) (my-codex--current-session))
      (let* ((sessions (seq-filter (or predicate #'identity)
                                   (my-codex--list (my-codex--project) all)))
             (table (my-codex--candidates sessions)))
        (unless table
          (user-error "No Codex sessions in %s" (my-codex--project)))
        (cdr (assoc (completing-read prompt (my-codex--completion-table table)
                                     nil t nil 'my-codex--name-history)
                    table)))))

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
  (lambda (string pred action)
    (if (eq action 'metadata)
        `(metadata (category . my-codex-session)
                   (display-sort-function . identity)
                   (annotation-function
                    . ,(lambda (candidate)
                         (when-let ((session (cdr (assoc candidate table))))
                           (format "  %s  %s" (plist-get session :status)
                                   (or (plist-get session :title) ""))))))
      (complete-with-action action table string pred))))

(defun my-codex--read-name (prompt &optional default)
  "Read a session name with PROMPT, offering the project's names; DEFAULT if empty."
  (let* ((names (ignore-errors
                  (mapcar (lambda (s) (plist-get s :name))
                          (my-codex--list (my-codex--project)))))
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
  "Return the elapsed time of SESSION's current or last turn, or \"\"."
  (let* ((id (plist-get session :id))
         (start (or (my-codex--time (plist-get session :turnStartedAt))
                    (gethash id my-codex--turn-starts)
                    (my-codex--time (plist-get session :startedAt))))
         (end (if (member (plist-get session :status) my-codex--active-statuses)
                  (current-time)
                (my-codex--time (plist-get session :finishedAt)))))
    (if (and start end (time-less-p start (time-add end 1)))
        (my-codex--duration (float-time (time-subtract end start)))
      "")))

(defun my-codex--update-tick ()
  "Start the redisplay timer if some session is active, else stop it."
  (let (active)
    (maphash (lambda (_ s)
               (when (member (plist-get s :status) my-codex--active-statuses)
                 (setq active t)))
             my-codex--sessions)
    (cond ((and active (not my-codex--tick-timer))
           (setq my-codex--tick-timer
                 (run-with-timer 1 1 #'force-mode-line-update t)))
          ((and (not active) my-codex--tick-timer)
           (cancel-timer my-codex--tick-timer)
           (setq my-codex--tick-timer nil)))))

;;;; Mode line

(defun my-codex-mode-line ()
  "Return the global mode-line text: counts of running and waiting sessions.
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
      (concat " Codex["
              (if (> running 0) (format "%d running" running) "")
              (if (and (> running 0) (> waiting 0)) " " "")
              (if (> waiting 0)
                  (propertize (format "%d waiting" waiting) 'face 'my-codex-approval-face)
                "")
              "]"))))

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

;;;; Notifications

(cl-defgeneric my-codex-handle-notification (method params)
  "Handle the sidecar's notification METHOD, a symbol, with PARAMS, a plist.
Unknown notifications are ignored."
  (:method (_method _params) nil))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/changed)) params)
  "Record the changed session in PARAMS; refresh its buffer and lists."
  (my-codex--remember (plist-get params :session))
  (my-codex--schedule-list-refresh)
  (force-mode-line-update t))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/output)) params)
  "Insert the transcript items and streamed pieces in PARAMS."
  (when-let ((buf (my-codex--buffer-of (plist-get params :id))))
    (with-current-buffer buf
      (my-codex--insert-items (plist-get params :items)))))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/request)) params)
  "Announce the approval request in PARAMS when its session is not in view."
  (let* ((id (plist-get params :id))
         (request (plist-get params :request))
         (session (gethash id my-codex--sessions))
         (buf (my-codex--buffer-of id)))
    (unless (and buf (get-buffer-window buf 'visible))
      (message "Codex %s waits for approval: %s%s"
               (if session (my-codex--label session) id)
               (or (plist-get request :command)
                   (plist-get request :reason)
                   (plist-get request :kind))
               (if session
                   (format " (C-x b %s)" (plist-get session :bufferName))
                 "")))))

(cl-defmethod my-codex-handle-notification ((_m (eql 'codex/session/finished)) params)
  "Insert the report in PARAMS; notify when the session is in the background."
  (let* ((session (my-codex--remember (plist-get params :session)))
         (text (plist-get params :text))
         (buf (my-codex--buffer-of (plist-get session :id))))
    (when buf
      (with-current-buffer buf (my-codex--insert-report text)))
    (unless (and buf (get-buffer-window buf 'visible))
      (when my-codex-notify-function
        (funcall my-codex-notify-function session text)))
    (my-codex--schedule-list-refresh)))

(cl-defmethod my-codex-handle-notification ((_m (eql 'window/showMessage)) params)
  "Show the sidecar's message in PARAMS."
  (message "codex-sessions: %s" (plist-get params :message)))

(defun my-codex-notify-echo-area (session text)
  "Show the first lines of TEXT, the report of SESSION, in the echo area."
  (message "Codex %s finished: %s" (my-codex--label session)
           (string-join (seq-take (cdr (split-string (or text "") "\n" t)) 2) "; ")))

;;;; Session buffers

(defvar my-codex-session-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-c C-c") #'my-codex-send)
    (define-key map (kbd "RET") #'my-codex-return)
    (define-key map (kbd "TAB") #'my-codex-toggle-output)
    (define-key map (kbd "C-c C-k") #'my-codex-cancel)
    (define-key map (kbd "C-c C-a") #'my-codex-accept)
    (define-key map (kbd "C-c C-s") #'my-codex-accept-for-session)
    (define-key map (kbd "C-c C-d") #'my-codex-decline)
    (define-key map (kbd "C-c C-r") #'my-codex-session-report)
    (define-key map (kbd "C-c C-l") #'my-codex-list-sessions)
    (define-key map (kbd "C-c C-n") #'my-codex-rename-session)
    (define-key map (kbd "C-c C-q") #'my-codex-kill-session)
    map)
  "Keymap of Codex session buffers.")

(define-derived-mode my-codex-session-mode text-mode "Codex"
  "Major mode of a Codex session buffer.
The conversation streams in above the prompt line; type the next
prompt below it and send it with \\[my-codex-send] or RET.

\\{my-codex-session-mode-map}"
  (setq-local font-lock-defaults nil)
  (setq-local header-line-format '(:eval (my-codex--header-line)))
  (setq-local truncate-lines nil)
  (setq-local word-wrap t))

(defun my-codex--header-line ()
  "Return the header line of the current session buffer."
  (let ((session (gethash my-codex--session-id my-codex--sessions)))
    (if (not session)
        " Codex"
      (let* ((status (plist-get session :status))
             (pending (length (plist-get session :pending)))
             (elapsed (my-codex--elapsed session)))
        (concat
         " " (my-codex--label session)
         "  " (propertize status 'face (my-codex--status-face status))
         (if (string-empty-p elapsed) "" (concat "  " elapsed))
         (format "  turns %d" (or (plist-get session :turns) 0))
         (if (> pending 0)
             (propertize (format "  %d approval%s pending: C-c C-a accept, C-c C-s for session, C-c C-d decline"
                                 pending (if (= pending 1) "" "s"))
                         'face 'my-codex-approval-face)
           "")
         (if (my-codex--live-connection) ""
           (propertize "  sidecar not running" 'face 'my-codex-error-face))
         (if-let ((error (plist-get session :error)))
             (propertize (concat "  " (my-codex--first-line error)) 'face 'my-codex-error-face)
           ""))))))

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
          my-codex--resyncing nil)
    (insert (propertize "\n" 'read-only t 'front-sticky t 'rear-nonsticky t))
    (setq my-codex--output-end (copy-marker (1- (point)) t))
    (insert (propertize "--- prompt (C-c C-c or RET sends) ---\n"
                        'face 'my-codex-status-face
                        'read-only t 'front-sticky t 'rear-nonsticky t
                        'my-codex-separator t))
    (setq my-codex--prompt-start (copy-marker (point)))
    (setq buffer-undo-list nil)
    (puthash id (current-buffer) my-codex--buffers)))

(defun my-codex--follow-name (session)
  "Rename the current buffer to SESSION's `bufferName' if it changed."
  (let ((name (plist-get session :bufferName)))
    (when (and name (not (equal name (buffer-name))))
      (when-let ((other (get-buffer name)))
        (with-current-buffer other
          (when my-codex--session-id
            (remhash my-codex--session-id my-codex--buffers)))
        (kill-buffer other))
      (rename-buffer name))))

(defun my-codex--open-buffer (session)
  "Return SESSION's buffer, created or caught up from the transcript."
  (let* ((id (plist-get session :id))
         (name (plist-get session :bufferName))
         (buf (or (my-codex--buffer-of id) (get-buffer name))))
    (unless buf
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
      (my-codex--catch-up))
    buf))

(defun my-codex--catch-up ()
  "Fetch every transcript item after the last one shown, synchronously."
  (let ((limit 1000) (more t))
    (while more
      (let* ((result (my-codex--request "codex/session/transcript"
                                        (list :id my-codex--session-id
                                              :after my-codex--last-seq
                                              :limit limit)))
             (items (plist-get result :items)))
        (my-codex--insert-items items t)
        (setq more (= (length items) limit))))))

(defun my-codex--resync ()
  "Fetch the transcript items after the last one shown, asynchronously."
  (unless my-codex--resyncing
    (let ((buf (current-buffer))
          (limit 1000))
      (setq my-codex--resyncing t)
      (unless
          (my-codex--async
           "codex/session/transcript"
           (list :id my-codex--session-id :after my-codex--last-seq :limit limit)
           (lambda (result)
             (when (buffer-live-p buf)
               (with-current-buffer buf
                 (setq my-codex--resyncing nil)
                 (let ((items (plist-get result :items)))
                   (my-codex--insert-items items t)
                   (when (= (length items) limit) (my-codex--resync)))))))
        (setq my-codex--resyncing nil)))))

(defmacro my-codex--at (pos &rest body)
  "Run BODY at POS with read-only text writable; make its insertions read-only."
  (declare (indent 1) (debug t))
  (let ((start (make-symbol "start")))
    `(let ((inhibit-read-only t)
           (,start nil))
       (save-excursion
         (goto-char ,pos)
         (setq ,start (point))
         ,@body
         (add-text-properties ,start (point)
                              '(read-only t front-sticky t rear-nonsticky t))))))

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
  "Move the positions recorded in `buffer-undo-list' by DELTA characters."
  (unless (or (zerop delta) (eq buffer-undo-list t))
    (setq buffer-undo-list
          (mapcar (lambda (entry) (my-codex--shift-undo-entry entry delta))
                  buffer-undo-list))))

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
  "Append the streamed PIECE to the text of its item, creating it if new."
  (let* ((item-id (plist-get piece :itemId))
         (text (or (plist-get piece :text) ""))
         (stream (cdr (assoc item-id my-codex--streams))))
    (unless stream
      (let ((start (marker-position my-codex--output-end)))
        (my-codex--at my-codex--output-end
          (if (equal (plist-get piece :kind) "commandDelta")
              (insert (propertize "$ (running)\n" 'face 'my-codex-command-face))
            (insert (propertize "Codex:\n" 'face 'my-codex-heading-face))))
        ;; The start moves on with text inserted just before it; the end
        ;; is moved by hand, so items inserted after it stay outside.
        (setq stream (cons (copy-marker start t)
                           (copy-marker my-codex--output-end nil)))
        (push (cons item-id stream) my-codex--streams)))
    (let ((end (cdr stream)))
      (my-codex--at end
        (insert (if (equal (plist-get piece :kind) "commandDelta")
                    (propertize text 'face 'my-codex-output-face)
                  text))
        (set-marker end (point))))))

(defun my-codex--insert-item (item)
  "Insert the transcript ITEM, replacing the streamed text of the same item."
  (let* ((item-id (plist-get item :itemId))
         (stream (and item-id (cdr (assoc item-id my-codex--streams)))))
    (if (not stream)
        (my-codex--at my-codex--output-end (my-codex--render item))
      (setq my-codex--streams (assoc-delete-all item-id my-codex--streams))
      (let ((inhibit-read-only t))
        (delete-region (car stream) (cdr stream)))
      (my-codex--at (car stream) (my-codex--render item))
      (set-marker (car stream) nil)
      (set-marker (cdr stream) nil))))

(defun my-codex--line (text &optional face)
  "Insert TEXT with FACE and end the line."
  (insert (if face (propertize text 'face face) text))
  (unless (string-suffix-p "\n" text) (insert "\n")))

(defun my-codex--render (item)
  "Insert the text of the transcript ITEM at point."
  (pcase (plist-get item :kind)
    ("user"
     (insert "\n")
     (my-codex--line (concat "> " (replace-regexp-in-string
                                   "\n" "\n  " (or (plist-get item :text) "")))
                     'my-codex-user-face))
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
     (my-codex--line (concat "Error: " (or (plist-get item :text) ""))
                     'my-codex-error-face))
    ("status"
     (my-codex--line (format "[%s]" (plist-get item :status)) 'my-codex-status-face))
    (kind (my-codex--line (format "[%s]" kind) 'my-codex-status-face))))

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
  "Insert the file change ITEM, one button per file."
  (let ((root (plist-get (plist-get (gethash my-codex--session-id my-codex--sessions)
                                    :project)
                         :root)))
    (my-codex--line "Files changed:" 'my-codex-heading-face)
    (seq-doseq (change (plist-get item :changes))
      (let ((path (plist-get change :path)))
        (insert (format "  %-6s " (or (plist-get change :kind) "")))
        (insert-text-button path
                            'action (lambda (_button)
                                      (find-file-other-window
                                       (expand-file-name path root)))
                            'help-echo "Open this file"
                            'follow-link t)
        (insert "\n")))))

(defun my-codex--render-request (item)
  "Insert the approval request ITEM, or the decision taken on it."
  (let ((request-id (plist-get item :requestId))
        (decision (plist-get item :decision)))
    (if decision
        (progn
          (my-codex--retire-request request-id decision)
          (my-codex--line (format "Approval %s: %s" request-id decision)
                          'my-codex-status-face))
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
        (put-text-property start (point) 'my-codex-request request-id)))))

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

(defun my-codex-return ()
  "Send the prompt when point is in it, else act on the button or command at point."
  (interactive)
  (cond ((and my-codex--prompt-start (>= (point) my-codex--prompt-start))
         (my-codex-send (my-codex--prompt-text)))
        ((button-at (point)) (push-button))
        ((get-text-property (point) 'my-codex-fold) (my-codex-toggle-output))
        (t (goto-char (point-max)))))

;;;; Commands

(defun my-codex--show (buffer &optional same-window)
  "Display BUFFER, in the selected window when SAME-WINDOW."
  (if same-window
      (pop-to-buffer-same-window buffer)
    (pop-to-buffer buffer)))

;;;###autoload
(defun my-codex-start-session (&optional name prompt)
  "Start the Codex session NAME in the current project and show its buffer.
NAME defaults to `my-codex-default-session-name'; a live session of
that name is reused.  PROMPT, when non-empty, starts the first turn.
Return the session's buffer."
  (interactive
   (list (my-codex--read-name "Start Codex session")
         (read-string "First prompt (optional): " nil 'my-codex--prompt-history)))
  (let* ((name (if (or (null name) (string-empty-p name)) my-codex-default-session-name name))
         (params (list :project (my-codex--project) :name name))
         (result (my-codex--request
                  "codex/session/start"
                  (if (and prompt (not (string-empty-p (string-trim prompt))))
                      (append params (list :prompt prompt))
                    params)
                  (max 60 my-codex-request-timeout)))
         (session (my-codex--remember (plist-get result :session)))
         (buf (my-codex--open-buffer session)))
    (when my-codex-pop-to-buffer-on-start
      (my-codex--show buf))
    (when (called-interactively-p 'interactive)
      (message "Codex session %s %s" (my-codex--label session)
               (if (eq (plist-get result :created) t) "started" "reused")))
    buf))

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

;;;###autoload
(defun my-codex-send (text &optional session)
  "Send TEXT as the next prompt of SESSION, by default the current buffer's.
Interactively, TEXT is the prompt typed at the end of the session
buffer, or read from the minibuffer.  A session that is not running
\(stopped, interrupted or failed) is resumed first.  Return the new
turn's id."
  (interactive
   (let ((session (my-codex--read-session "Send to Codex session: ")))
     (list (or (and (derived-mode-p 'my-codex-session-mode)
                    (let ((typed (my-codex--prompt-text)))
                      (and (not (string-empty-p typed)) typed)))
               (read-string (format "Prompt for %s: " (my-codex--label session))
                            nil 'my-codex--prompt-history))
           session)))
  (when (or (null text) (string-empty-p (string-trim text)))
    (user-error "Nothing to send: type a prompt first"))
  (let* ((session (my-codex--session session))
         (from-prompt (and (derived-mode-p 'my-codex-session-mode)
                           (equal my-codex--session-id (plist-get session :id))
                           (equal (string-trim text) (my-codex--prompt-text)))))
    (unless (or (my-codex--live-p session) (plist-get session :owner))
      (setq session (my-codex-resume-session session t)))
    (let ((result (my-codex--request "codex/session/send"
                                     (append (my-codex--ref session) (list :text text))
                                     (max 60 my-codex-request-timeout))))
      (my-codex--remember (plist-get result :session))
      (add-to-history 'my-codex--prompt-history text)
      (when from-prompt
        (let ((inhibit-read-only t))
          (delete-region my-codex--prompt-start (point-max)))
        ;; Undo remembers the edits of the next prompt only.
        (setq buffer-undo-list nil))
      (plist-get result :turnId))))

;;;###autoload
(defun my-codex-cancel (&optional session)
  "Cancel the running turn, or the queued prompt, of SESSION."
  (interactive (list (my-codex--read-session "Cancel the turn of: ")))
  (let ((session (my-codex--session session)))
    (my-codex--remember
     (plist-get (my-codex--request "codex/session/cancel" (my-codex--ref session))
                :session))
    (message "Cancelling the turn of %s" (my-codex--label session))))

(defun my-codex-respond (decision &optional request-id session)
  "Answer the approval REQUEST-ID of SESSION with DECISION.
DECISION is \"accept\", \"acceptForSession\", \"decline\" or \"cancel\".
REQUEST-ID defaults to the request at point, else the oldest pending one."
  (let* ((session (my-codex--session session))
         (request-id
          (or request-id
              (get-text-property (point) 'my-codex-request)
              (plist-get (seq-first (plist-get (my-codex--get session) :pending))
                         :requestId)
              (user-error "Codex %s waits for no approval" (my-codex--label session)))))
    (my-codex--remember
     (plist-get (my-codex--request "codex/session/respond"
                                   (append (my-codex--ref session)
                                           (list :requestId request-id
                                                 :decision decision)))
                :session))))

(defun my-codex-accept ()
  "Accept the approval request at point, or the oldest pending one."
  (interactive)
  (my-codex-respond "accept"))

(defun my-codex-accept-for-session ()
  "Accept the request at point, or the oldest, for the rest of the session."
  (interactive)
  (my-codex-respond "acceptForSession"))

(defun my-codex-decline ()
  "Decline the approval request at point, or the oldest pending one."
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
    (my-codex--schedule-list-refresh)
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
        (dolist (id killed)
          (when-let ((session (gethash id my-codex--sessions)))
            (ignore-errors (my-codex--get session))))
        (my-codex--schedule-list-refresh)
        (message "Killed %d Codex session%s %s" (length killed)
                 (if (= (length killed) 1) "" "s") what)
        killed))))

;;;###autoload
(defun my-codex-rename-session (new-name &optional session)
  "Rename SESSION to NEW-NAME; its buffer follows the sidecar's new buffer name."
  (interactive
   (let ((session (my-codex--read-session "Rename Codex session: ")))
     (list (read-string (format "Rename %s to: " (plist-get session :name)))
           session)))
  (let* ((session (my-codex--session session))
         (result (my-codex--request "codex/session/rename"
                                    (append (my-codex--ref session)
                                            (list :newName new-name)))))
    (my-codex--remember (plist-get result :session))
    (my-codex--schedule-list-refresh)
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

;;;; The list of sessions

(defvar-local my-codex--list-project nil
  "The project the session list shows, or nil for every project.")

(defvar my-codex-list-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "RET") #'my-codex-list-visit)
    (define-key map (kbd "k") #'my-codex-list-kill)
    (define-key map (kbd "K") #'my-codex-list-kill-all)
    (define-key map (kbd "r") #'my-codex-list-rename)
    (define-key map (kbd "c") #'my-codex-list-cancel)
    (define-key map (kbd "R") #'my-codex-list-report)
    map)
  "Keymap of the Codex session list.")

(define-derived-mode my-codex-list-mode tabulated-list-mode "Codex Sessions"
  "Major mode listing Codex sessions, waiting and failed ones on top.
\\{my-codex-list-mode-map}"
  (setq tabulated-list-format
        [("Project" 14 nil) ("Name" 16 nil) ("Status" 11 nil)
         ("Elapsed" 8 nil :right-align t) ("Title / summary" 0 nil)])
  (setq tabulated-list-padding 1)
  (setq tabulated-list-sort-key nil)
  (add-hook 'tabulated-list-revert-hook #'my-codex--list-refresh nil t)
  (tabulated-list-init-header))

(defun my-codex--list-entry (session)
  "Return the `tabulated-list-entries' entry of SESSION."
  (let* ((status (plist-get session :status))
         (summary (plist-get (plist-get session :report) :summary))
         (title (or (plist-get session :title) "")))
    (list (plist-get session :id)
          (vector (or (plist-get (plist-get session :project) :name) "")
                  (plist-get session :name)
                  (propertize status 'face (my-codex--status-face status))
                  (my-codex--elapsed session)
                  (cond ((and (equal status "failed") (plist-get session :error))
                         (propertize (my-codex--first-line (plist-get session :error))
                                     'face 'my-codex-error-face))
                        ((and summary (not (member status my-codex--active-statuses)))
                         (if (string-empty-p title) summary (concat title " -- " summary)))
                        (t title))))))

(defun my-codex--list-show (sessions)
  "Show SESSIONS, in the sidecar's order, in the current list buffer."
  (setq tabulated-list-entries (mapcar #'my-codex--list-entry sessions))
  (tabulated-list-print t))

(defun my-codex--list-refresh ()
  "Fetch the sessions of the current list buffer's project, synchronously."
  (setq tabulated-list-entries
        (mapcar #'my-codex--list-entry (my-codex--list my-codex--list-project))))

(defun my-codex--list-buffers ()
  "Return the live session list buffers."
  (seq-filter (lambda (buf) (eq (buffer-local-value 'major-mode buf) 'my-codex-list-mode))
              (buffer-list)))

(defun my-codex--schedule-list-refresh ()
  "Refresh the session lists after a short delay, once for a burst."
  (when (and (not my-codex--list-timer) (my-codex--list-buffers))
    (setq my-codex--list-timer
          (run-with-timer 0.2 nil #'my-codex--refresh-lists))))

(defun my-codex--refresh-lists ()
  "Refresh every session list buffer from the sidecar, asynchronously."
  (setq my-codex--list-timer nil)
  (dolist (buf (my-codex--list-buffers))
    (let ((project (buffer-local-value 'my-codex--list-project buf)))
      (my-codex--async "codex/session/list" (list :project project)
                       (lambda (result)
                         (when (buffer-live-p buf)
                           (with-current-buffer buf
                             (my-codex--list-show
                              (mapcar #'my-codex--remember
                                      (append (plist-get result :sessions) nil))))))))))

;;;###autoload
(defun my-codex-list-sessions (&optional all-projects)
  "List the Codex sessions of the current project, kept up to date.
With ALL-PROJECTS (interactively, a prefix argument), list every
project's sessions.  Return the list buffer."
  (interactive "P")
  (let ((project (unless all-projects (my-codex--project)))
        (buf (get-buffer-create "*codex sessions*")))
    (with-current-buffer buf
      (my-codex-list-mode)
      (setq my-codex--list-project project)
      (when project (setq default-directory (file-name-as-directory project)))
      (my-codex--list-refresh)
      (tabulated-list-print))
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
  (my-codex-kill-session (my-codex--list-session))
  (revert-buffer))

(defun my-codex-list-kill-all ()
  "Kill every live session of the project of this line, after asking once."
  (interactive)
  (let* ((session (my-codex--list-session))
         (root (plist-get (plist-get session :project) :root)))
    (when (yes-or-no-p (format "Kill every Codex session of %s? "
                               (abbreviate-file-name root)))
      (my-codex-kill-all-sessions nil root)
      (revert-buffer))))

(defun my-codex-list-rename (new-name)
  "Rename the session on this line to NEW-NAME."
  (interactive (list (read-string (format "Rename %s to: "
                                          (plist-get (my-codex--list-session) :name)))))
  (my-codex-rename-session new-name (my-codex--list-session))
  (revert-buffer))

(defun my-codex-list-cancel ()
  "Cancel the running turn of the session on this line."
  (interactive)
  (my-codex-cancel (my-codex--list-session)))

(defun my-codex-list-report ()
  "Show the report of the session on this line."
  (interactive)
  (my-codex-session-report (my-codex--list-session))
  (display-buffer "*my-codex report*"))

;;;; A keymap for every command

;;;###autoload
(defvar my-codex-command-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "s") #'my-codex-start-session)
    (define-key map (kbd "b") #'my-codex-switch-session)
    (define-key map (kbd "l") #'my-codex-list-sessions)
    (define-key map (kbd "m") #'my-codex-send)
    (define-key map (kbd "c") #'my-codex-cancel)
    (define-key map (kbd "k") #'my-codex-kill-session)
    (define-key map (kbd "K") #'my-codex-kill-all-sessions)
    (define-key map (kbd "r") #'my-codex-rename-session)
    (define-key map (kbd "R") #'my-codex-session-report)
    (define-key map (kbd "u") #'my-codex-resume-session)
    (define-key map (kbd "e") #'my-codex-show-events)
    (define-key map (kbd "E") #'my-codex-show-stderr)
    map)
  "Keymap of every my-codex command, to bind under a prefix key.")
;;;###autoload
(defalias 'my-codex-command-map my-codex-command-map)

(provide 'my-codex)
;;; my-codex.el ends here
