--- What the front-end last heard from the sidecar about each session, and the
--- handlers of the sidecar's notifications. The sidecar owns the truth; this is a cache.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")

local M = {}

local H = {
  sessions = {}, -- id -> session object
  turn_starts = {}, -- id -> os.time() when this Neovim saw the current turn begin
}

local ACTIVE = { queued = true, starting = true, running = true, waiting = true }

--- Is `status` one of a session at work (queued, starting, running, waiting)?
function M.active(status)
  return ACTIVE[status] == true
end

--- When the session's current or last turn began (seconds), if known.
function M.turn_start(session)
  local util = require("codex_sessions.util")
  return util.parse_time(session.turnStartedAt) or H.turn_starts[session.id] or util.parse_time(session.startedAt)
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

--- Record a session object in the cache only; return the one it replaces.
function M.remember(session)
  local old = H.sessions[session.id]
  H.sessions[session.id] = session
  -- when the current turn began, as far as this Neovim saw it (for the elapsed time)
  if M.active(session.status) and not (old and M.active(old.status)) then
    H.turn_starts[session.id] = os.time()
  end
  return old
end

--- Record a session object from any answer or notification; update its buffer and lists.
function M.update(session)
  if type(session) ~= "table" or not session.id then
    return
  end
  local old = M.remember(session)
  require("codex_sessions.buffer").on_changed(session)
  require("codex_sessions.list").schedule_refresh()
  vim.cmd("redrawstatus")
  return old
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

local function first_lines(text, n)
  local lines = vim.split(text or "", "\n", { plain = true })
  return table.concat(vim.list_slice(lines, 1, n), "\n")
end

local function on_changed(params)
  local session = params.session
  local old = M.update(session)
  fire("CodexSessionChanged", { session = session, previous = old and old.status or nil })
end

local function on_output(params)
  require("codex_sessions.buffer").on_output(params.id, params.items or {})
end

local function on_request(params)
  local session = H.sessions[params.id]
  local request = params.request or {}
  local buffer = require("codex_sessions.buffer")
  if config.options.notify.waiting and not buffer.visible(params.id) then
    local what = request.command
    if what == nil or what == vim.NIL then
      what = request.kind or "a request"
    end
    vim.notify(string.format("codex-sessions: %s waits for approval: %s (:CodexSessions switch %s)",
      session and session.name or params.id, what, session and session.name or ""), vim.log.levels.WARN)
  end
  fire("CodexSessionWaiting", { id = params.id, session = session, request = request })
end

local function on_finished(params)
  local session = params.session
  M.update(session)
  local buffer = require("codex_sessions.buffer")
  if config.options.notify.finished and not buffer.visible(session.id) then
    local status = params.report and params.report.status
    local level = (status == "failed" or status == "blocked") and vim.log.levels.WARN or vim.log.levels.INFO
    vim.notify("codex-sessions: " .. first_lines(params.text, 3), level)
  end
  fire("CodexSessionFinished", { session = session, report = params.report, text = params.text })
end

local function on_exited()
  -- what that sidecar said is stale now; the next one tells afresh
  H.sessions = {}
  require("codex_sessions.buffer").on_sidecar_exit()
  require("codex_sessions.list").on_sidecar_exit()
  vim.cmd("redrawstatus")
end

rpc.on("codex/session/changed", on_changed)
rpc.on("codex/session/output", on_output)
rpc.on("codex/session/request", on_request)
rpc.on("codex/session/finished", on_finished)
rpc.on("codex-sessions/exited", on_exited)

return M
