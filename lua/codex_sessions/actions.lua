--- What the commands and keys do: one sidecar request each, errors as ERROR notifications.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local state = require("codex_sessions.state")
local util = require("codex_sessions.util")

local M = {}

--- A session reference: `{id}`, or `{project, name}`. With no name: the session of the
--- current buffer, else `main` of the current project.
function M.ref(name, project)
  if type(name) == "table" then
    return name
  end
  if name == nil or name == "" then
    local session = require("codex_sessions.buffer").session_of(0)
    if session and not project then
      return { id = session.id }
    end
    name = "main"
  end
  return { project = project or util.project_path(), name = name }
end

local function call(method, params, on_ok)
  rpc.request(method, params, function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    if result and result.session then
      state.update(result.session)
    end
    if on_ok then
      on_ok(result)
    end
  end)
end

--- Open `session`'s buffer.
function M.open_session(session, how)
  state.update(session)
  return require("codex_sessions.buffer").open(session, how)
end

--- Start (or reuse) session `name` of the project, send `prompt` if given, open its buffer.
function M.start(name, prompt, project, on_done)
  local params = {
    project = project or util.project_path(),
    name = (name and name ~= "") and name or "main",
    prompt = prompt,
    model = config.options.model,
    sandbox = config.options.sandbox,
    approvalPolicy = config.options.approval_policy,
  }
  call("codex/session/start", params, function(result)
    M.open_session(result.session)
    if not result.created and not prompt then
      vim.notify("codex-sessions: " .. result.session.name .. " was already running; switched to it",
        vim.log.levels.INFO)
    end
    if on_done then
      on_done(result)
    end
  end)
end

--- Open the buffer of session `name` of the project.
function M.switch(name)
  call("codex/session/get", M.ref(name), function(result)
    M.open_session(result.session)
  end)
end

function M.kill(ref)
  call("codex/session/kill", M.ref(ref), function(result)
    local s = result.session
    if s.status == "stopped" then
      vim.notify("codex-sessions: killed " .. s.name, vim.log.levels.INFO)
    else -- it was not running: the sidecar left it as it was
      vim.notify(string.format("codex-sessions: %s is %s, not running: nothing to kill", s.name, s.status),
        vim.log.levels.WARN)
    end
  end)
end

--- Kill every session of the project, or of every project with `everywhere`.
function M.kill_all(everywhere, project)
  local params = vim.empty_dict()
  if not everywhere then
    params = { project = project or util.project_path() }
  end
  call("codex/session/killAll", params, function(result)
    local n = #(result.killed or {})
    vim.notify(string.format("codex-sessions: killed %d session%s%s", n, n == 1 and "" or "s",
      everywhere and " in every project" or ""), vim.log.levels.INFO)
    require("codex_sessions.list").schedule_refresh()
  end)
end

function M.rename(ref, new_name)
  call("codex/session/rename", vim.tbl_extend("force", M.ref(ref), { newName = new_name }))
end

function M.send(ref, text)
  call("codex/session/send", vim.tbl_extend("force", M.ref(ref), { text = text }))
end

function M.cancel(ref)
  call("codex/session/cancel", M.ref(ref))
end

--- Show the report of the last finished turn in a scratch window.
function M.report(ref)
  rpc.request("codex/session/report", M.ref(ref), function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    local text = result.text or ""
    if text == "" then
      text = "(no report yet: the session has not finished a turn)"
    end
    local buf = vim.api.nvim_create_buf(false, true)
    vim.bo[buf].bufhidden = "wipe"
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(text, "\n", { plain = true }))
    vim.bo[buf].modifiable = false
    vim.bo[buf].filetype = "codex_sessions_report"
    vim.b[buf].codex_sessions_report = result.report
    local previous = vim.api.nvim_get_current_win()
    vim.cmd("botright split")
    vim.api.nvim_win_set_buf(0, buf)
    vim.api.nvim_win_set_height(0, math.min(#vim.split(text, "\n") + 1, 15))
    vim.keymap.set("n", "q", function()
      vim.api.nvim_win_close(0, false)
      if vim.api.nvim_win_is_valid(previous) then
        vim.api.nvim_set_current_win(previous)
      end
    end, { buffer = buf, nowait = true, desc = "close the report" })
  end)
end

--- Resume a stopped or interrupted session and open its buffer.
function M.resume(name)
  call("codex/session/resume", M.ref(name), function(result)
    M.open_session(result.session)
  end)
end

--- Answer a pending request of a session (`decision`: accept, acceptForSession, decline, cancel).
function M.respond(ref, request_id, decision)
  call("codex/session/respond", vim.tbl_extend("force", M.ref(ref), { requestId = request_id, decision = decision }))
end

return M
