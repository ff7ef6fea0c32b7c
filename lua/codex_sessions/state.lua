--- What this Neovim knows of every session, kept from the daemon's notifications (a full
--- list only when a connection begins), and the handlers of those notifications. The
--- daemon owns the truth (statuses, `headline`, `rank`); this is a cache of it.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local util = require("codex_sessions.util")

local M = {}

local H = {
  sessions = {}, -- id -> session object
  connected = false, -- the cache follows a live connection
  synced = false, -- a full list arrived on this connection
  waiting = {}, -- functions to run once it has
  daemon = nil, -- true: a daemon keeps the sessions; false: a standalone sidecar (serve --standalone)
  models = nil, -- what `codex/models` said on this connection
  models_waiting = nil, -- callbacks while it is asked
  limits = nil, -- the account's rate limits, as `codex/account/limits` last said (nil: none)
  limits_asked = nil, -- when they were last asked (os.time())
}

local ACTIVE = { queued = true, starting = true, running = true, waiting = true }

--- Is `status` one of a session at work (queued, starting, running, waiting)?
function M.active(status)
  return ACTIVE[status] == true
end

--- Does the cache follow a live connection (else it shows what was last heard)?
function M.connected()
  return H.connected
end

--- Is it a daemon that keeps the sessions (true), a standalone sidecar whose sessions end
--- with this connection (false), or not known yet (nil)?
function M.daemon()
  return H.daemon
end

local function fire(pattern, data)
  vim.api.nvim_exec_autocmds("User", { pattern = pattern, modeline = false, data = data })
end

--- The cached session `id`.
function M.get(id)
  return H.sessions[id]
end

--- Every cached session.
function M.all()
  return vim.tbl_values(H.sessions)
end

--- Sessions in the daemon's list order: by `rank`, then most recently updated first.
function M.sorted(sessions)
  table.sort(sessions, function(a, b)
    local ra, rb = a.rank or 5, b.rank or 5
    if ra ~= rb then
      return ra < rb
    end
    return (a.updatedAt or "") > (b.updatedAt or "")
  end)
  return sessions
end

--- Is `s` in the list when stopped sessions are hidden? Any session but a stopped one,
--- and a stopped one whose own work tree is not merged or discarded yet.
function M.listed(s)
  return s.status ~= "stopped" or (type(s.worktree) == "table" and s.worktree.merged ~= true)
end

--- The cached sessions of the project whose root is `root` (with `stopped`, also the
--- stopped ones), in list order.
function M.of_project(root, stopped)
  local out = {}
  for _, s in pairs(H.sessions) do
    if s.project and s.project.root == root and (stopped or M.listed(s)) then
      table.insert(out, s)
    end
  end
  return M.sorted(out)
end

--- How many of a project's sessions are numbered, for :CodexSessions N and the
--- <Plug>(CodexSessions-N) mappings.
M.NUMBERED = 10

--- The first sessions of the project `root` in list order (stopped ones left out as the
--- list leaves them out): session number n is the n-th.
function M.numbered(root)
  return vim.list_slice(M.of_project(root, false), 1, M.NUMBERED)
end

--- Session id -> its number in its project's list.
function M.numbers(root)
  local out = {}
  for i, s in ipairs(M.numbered(root)) do
    out[s.id] = i
  end
  return out
end

--- The root of the known project that holds `path` (the longest root it lies in), so
--- completion needs no request. nil when no cached session's project holds it.
function M.root_for(path)
  path = vim.uv.fs_realpath(path) or path
  local best
  for _, s in pairs(H.sessions) do
    local root = s.project and s.project.root
    if root and (path == root or vim.startswith(path, root .. "/")) and (not best or #root > #best) then
      best = root
    end
  end
  return best
end

--- The cached session named `name` in the project that holds `path`.
function M.find(path, name)
  local root = M.root_for(path)
  if not root then
    return nil
  end
  for _, s in pairs(H.sessions) do
    if s.project.root == root and s.name == name then
      return s
    end
  end
end

local function views(session)
  require("codex_sessions.buffer").on_changed(session)
  require("codex_sessions.list").on_changed()
  if package.loaded["codex_sessions.review"] then
    require("codex_sessions.review").on_changed(session)
  end
  vim.cmd("redrawstatus!")
end

--- Keep `session` unless the cache holds a newer copy (by the daemon's `version`);
--- return the one it replaces and whether it was taken.
function M.remember(session)
  local old = H.sessions[session.id]
  if old and type(session.version) == "number" and type(old.version) == "number" then
    if session.version < old.version then
      return old, false -- an answer that left before a newer notification
    end
  elseif old and (session.updatedAt or "") < (old.updatedAt or "") then
    return old, false
  end
  H.sessions[session.id] = session
  return old, true
end

--- Record a session object from an answer or a notification; update its views.
function M.update(session)
  if type(session) ~= "table" or not session.id then
    return
  end
  local old, taken = M.remember(session)
  if taken then
    views(session)
  end
  return old
end

--- A session that is gone for good (forgotten): out of the cache, its buffer wiped.
function M.forget(id)
  H.sessions[id] = nil
  require("codex_sessions.buffer").forget(id)
  require("codex_sessions.list").on_changed()
  vim.cmd("redrawstatus!")
end

--- Ask for every session (all projects, stopped ones too) and replace the cache.
function M.sync(callback)
  rpc.request("codex/session/list", { all = true }, function(err, result)
    if err then
      rpc.notify_error(err, "listing the sessions")
    else
      local fresh = {}
      for _, s in ipairs(result.sessions or {}) do
        fresh[s.id] = s
      end
      H.sessions, H.synced = fresh, true
      local waiting = H.waiting
      H.waiting = {}
      for _, fn in ipairs(waiting) do
        pcall(fn)
      end
      for _, s in pairs(fresh) do
        require("codex_sessions.buffer").on_changed(s)
      end
      require("codex_sessions.list").on_changed()
      vim.cmd("redrawstatus!")
    end
    if callback then
      callback(err)
    end
  end)
end

--- Run `fn` once the cache holds the daemon's full list (at once when it does;
--- connects in the background when needed).
function M.when_synced(fn)
  if H.synced then
    fn()
    return
  end
  table.insert(H.waiting, fn)
  local err = rpc.connect()
  if err then
    H.waiting = {}
    util.notify("codex-sessions: " .. err, vim.log.levels.ERROR)
  end
end

--- The models Codex offers (`codex/models`), asked once per connection: `callback(models)`
--- (nil when asking failed, which is said). Completion calls it with no callback: it
--- starts the question and offers what is known.
function M.models(callback)
  if H.models then
    if callback then
      callback(H.models)
    end
    return H.models
  end
  if H.models_waiting then
    if callback then
      table.insert(H.models_waiting, callback)
    end
    return nil
  end
  H.models_waiting = { callback }
  rpc.request("codex/models", vim.empty_dict(), function(err, result)
    local waiting = H.models_waiting or {}
    H.models_waiting = nil
    if err then
      if #waiting > 0 then
        rpc.notify_error(err, "listing Codex's models")
      end
    else
      H.models = type(result.models) == "table" and result.models or {}
    end
    for _, fn in ipairs(waiting) do
      fn(H.models)
    end
  end)
  return nil
end

--- The account's rate limits as last heard (nil when Codex reports none).
function M.limits()
  return H.limits
end

--- Ask for the account's rate limits in the background (not within 5 minutes of the
--- last time, unless `force`); the list shows them when they come.
function M.fetch_limits(force)
  if not force and H.limits_asked and os.time() - H.limits_asked < 300 then
    return
  end
  H.limits_asked = os.time()
  rpc.request("codex/account/limits", vim.empty_dict(), function(err, result)
    if err then
      return -- an older daemon, or none: nothing to show
    end
    H.limits = type(result.limits) == "table" and result.limits or nil
    require("codex_sessions.list").on_changed()
  end)
end

--- Set what the list shows as the account's limits (for scripts and tests).
function M.set_limits(limits)
  H.limits = limits
  require("codex_sessions.list").on_changed()
end

--- Counts for the statusline: running (also starting and queued) and waiting.
function M.counts()
  local c = { running = 0, waiting = 0, failed = 0, idle = 0, total = 0 }
  for _, s in pairs(H.sessions) do
    local st = s.status
    if st == "running" or st == "starting" or st == "queued" then
      c.running = c.running + 1
    elseif st == "waiting" then
      c.waiting = c.waiting + 1
    elseif st == "failed" then
      c.failed = c.failed + 1
    elseif st == "idle" then
      c.idle = c.idle + 1
    end
    if st ~= "stopped" then
      c.total = c.total + 1
    end
  end
  return c
end

--- Sessions with a turn at work (it goes on in the daemon when Neovim exits).
function M.busy()
  local out = {}
  for _, s in pairs(H.sessions) do
    if M.active(s.status) then
      table.insert(out, s)
    end
  end
  return M.sorted(out)
end

M.one_line = util.one_line

local function label(session)
  return session and session.name or "?"
end

local function present(v)
  return v ~= nil and v ~= vim.NIL and v ~= ""
end

--- What a change of the notetaker's state is worth a word: its first failure, learn mode
--- ending by itself.
local function notes_news(old, session)
  if present(session.notesError) and not (old and present(old.notesError)) then
    util.notify(M.one_line(string.format("codex-sessions: %s: notes: %s", label(session), session.notesError)),
      vim.log.levels.WARN)
  end
  local was = old and type(old.learn) == "table" and old.learn.on == true
  local learn = type(session.learn) == "table" and session.learn or nil
  if was and learn and learn.on == false and learn.endedBecause == "resolved" then
    util.notify(string.format("codex-sessions: %s: learn mode ended: every gap it tracked is resolved",
      label(session)), vim.log.levels.INFO)
  end
end

local function on_changed(params)
  local session = params.session
  local old = M.update(session)
  if type(session) == "table" and session.id and H.sessions[session.id] == session then
    notes_news(old, session)
  end
  fire("CodexSessionChanged", { session = session, previous = old and old.status or nil })
end

local function on_output(params)
  require("codex_sessions.buffer").on_output(params.id, params.items or {})
end

local function on_request(params)
  local session = H.sessions[params.id]
  local request = params.request or {}
  if request.kind == "promptReview" then
    require("codex_sessions.review").on_request(session, request)
    fire("CodexSessionWaiting", { id = params.id, session = session, request = request })
    return
  end
  if config.options.notify.waiting and not require("codex_sessions.buffer").visible(params.id) then
    local what = request.command
    if what == nil or what == vim.NIL then
      what = request.kind or "a request"
    end
    util.notify(M.one_line(string.format("codex-sessions: %s waits for approval: %s (:CodexSessions pending)",
      label(session), what)), vim.log.levels.WARN)
  end
  fire("CodexSessionWaiting", { id = params.id, session = session, request = request })
end

local function on_finished(params)
  local session = params.session
  M.update(session)
  if config.options.notify.finished and not require("codex_sessions.buffer").visible(session.id) then
    local report = type(params.report) == "table" and params.report or {}
    local status = report.status or "done"
    local level = (status == "failed" or status == "blocked") and vim.log.levels.WARN or vim.log.levels.INFO
    util.notify(M.one_line(string.format("codex-sessions: %s %s: %s", label(session), status, report.summary or "")),
      level)
  end
  fire("CodexSessionFinished", { session = session, report = params.report, text = params.text })
end

local function on_forgotten(params)
  if params.id and H.sessions[params.id] then
    M.forget(params.id)
  end
end

local function on_overlap(params)
  local names = {}
  for _, id in ipairs(type(params.sessions) == "table" and params.sessions or {}) do
    table.insert(names, label(H.sessions[id]))
  end
  local what = params.reason == "outOfScope" and "written outside its write scope by"
    or "changed by more than one session:"
  util.notify(M.one_line(string.format("codex-sessions: %s %s %s (the list marks them with !)",
    tostring(params.path), what, table.concat(names, ", "))), vim.log.levels.WARN)
  fire("CodexSessionOverlap", { path = params.path, sessions = params.sessions, reason = params.reason })
end

local SHOW_LEVELS = { vim.log.levels.ERROR, vim.log.levels.WARN, vim.log.levels.INFO, vim.log.levels.DEBUG }

local function on_show_message(params)
  local level = SHOW_LEVELS[tonumber(params.type) or 3] or vim.log.levels.INFO
  local msg = tostring(params.message or "")
  if not vim.startswith(msg, "codex-sessions") then
    msg = "codex-sessions: " .. msg
  end
  util.notify(msg, level)
end

local function on_connected(params)
  H.connected = true
  rpc.request("codex/daemon/status", vim.empty_dict(), function(err)
    H.daemon = err == nil -- a standalone sidecar refuses it
  end)
  M.sync(function(err)
    if not err and params.reconnect then
      require("codex_sessions.buffer").catch_up_all()
    end
  end)
end

local function on_exited()
  -- what is cached stays for completion and the list, marked as not followed
  H.connected, H.synced, H.waiting = false, false, {}
  H.models, H.models_waiting = nil, nil
  require("codex_sessions.buffer").on_disconnected()
  require("codex_sessions.list").on_changed()
  vim.cmd("redrawstatus!")
end

rpc.on("codex/session/changed", on_changed)
rpc.on("codex/session/output", on_output)
rpc.on("codex/session/request", on_request)
rpc.on("codex/session/finished", on_finished)
rpc.on("codex/session/forgotten", on_forgotten)
rpc.on("codex/session/overlap", on_overlap)
rpc.on("window/showMessage", on_show_message)
rpc.on("codex-sessions/connected", on_connected)
rpc.on("codex-sessions/exited", on_exited)

return M
