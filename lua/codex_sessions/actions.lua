--- What the commands and keys do: one daemon request each, errors as ERROR notifications.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local state = require("codex_sessions.state")
local util = require("codex_sessions.util")

local M = {}

local LIVE = { queued = true, starting = true, running = true, waiting = true, idle = true }

--- A session reference: `{id}`, or `{project, name}`. With no name: the session of the
--- current buffer, else the one in this tab's session window, else the default (`main`)
--- of the current project.
function M.ref(name, project)
  if type(name) == "table" then
    return name
  end
  if name == nil or name == "" then
    local buffer = require("codex_sessions.buffer")
    local session = buffer.session_of(0)
    if not session and not project then
      local win = util.session_window()
      session = win and buffer.session_of(vim.api.nvim_win_get_buf(win))
    end
    if session and not project then
      return { id = session.id }
    end
    name = config.DEFAULT_NAME
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

--- Open `session`'s buffer in the session window.
function M.open_session(session)
  state.update(session)
  return require("codex_sessions.buffer").open(session)
end

--- Start session `name` of the project (resuming a stopped one of that name; with
--- `fresh`, a new conversation, the old one renamed NAME~N), send `prompt` if given,
--- and open its buffer (unless `background`).
function M.start(name, prompt, project, opts, on_done)
  if type(opts) == "function" then -- start(name, prompt, project, on_done)
    opts, on_done = nil, opts
  end
  opts = opts or {}
  local params = {
    project = project or util.project_path(),
    name = (name and name ~= "") and name or config.DEFAULT_NAME,
    prompt = prompt,
    fresh = opts.fresh or nil,
    model = config.options.model,
    sandbox = config.options.sandbox,
    approvalPolicy = config.options.approval_policy,
  }
  call("codex/session/start", params, function(result)
    if not opts.background then
      M.open_session(result.session)
    end
    if on_done then
      on_done(result)
    end
  end)
end

--- A session of the project picked with vim.ui.select (telescope, fzf-lua, snacks...
--- show theirs): `keep(session)` says which are offered.
local function pick(prompt, keep, on_choice)
  rpc.request("codex/session/list", { project = util.project_path(), all = true }, function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    local choices = {}
    for _, s in ipairs(result.sessions or {}) do
      state.update(s)
      if keep(s) then
        table.insert(choices, s)
      end
    end
    if #choices == 0 then
      util.notify("codex-sessions: no session to " .. prompt:lower() .. " in this project", vim.log.levels.INFO)
      return
    end
    vim.ui.select(choices, {
      prompt = prompt,
      kind = "codex_sessions",
      format_item = function(s)
        return string.format("%-20s %-11s %s", s.name, s.status, s.headline or "")
      end,
    }, function(choice)
      if choice then
        on_choice(choice)
      end
    end)
  end)
end

--- Open the buffer of session `name` of the project (any status); no name: pick one.
function M.switch(name)
  if name == nil or name == "" then
    pick("Switch to", function() return true end, M.open_session)
    return
  end
  call("codex/session/get", M.ref(name), function(result)
    M.open_session(result.session)
  end)
end

--- Resume a stopped, interrupted or failed session and open its buffer; no name: pick one.
function M.resume(name)
  if name == nil or name == "" then
    pick("Resume", function(s) return not LIVE[s.status] end, function(s) M.resume({ id = s.id }) end)
    return
  end
  call("codex/session/resume", M.ref(name), function(result)
    M.open_session(result.session)
  end)
end

function M.kill(ref)
  call("codex/session/kill", M.ref(ref), function(result)
    util.notify("codex-sessions: killed " .. result.session.name, vim.log.levels.INFO)
  end)
end

--- Kill every session of the project, or of every project with `everywhere`, once the
--- user said yes.
function M.kill_all(everywhere, project)
  local path = project or util.project_path()
  local root = state.root_for(path)
  local doomed = {}
  for _, s in ipairs(state.all()) do
    if LIVE[s.status] and (everywhere or (root and s.project.root == root)) then
      table.insert(doomed, s.name)
    end
  end
  table.sort(doomed)
  local where = everywhere and "in every project" or ("of " .. vim.fn.fnamemodify(root or path, ":t"))
  local question
  if state.connected() and (#doomed > 0 or root or everywhere) then
    if #doomed == 0 then
      util.notify("codex-sessions: no running session " .. where, vim.log.levels.INFO)
      return
    end
    question = string.format("Kill %d session%s %s (%s)? Their turns stop; their history is kept.", #doomed,
      #doomed == 1 and "" or "s", where, table.concat(doomed, ", "))
  else
    question = "Kill every session " .. where .. "? Their turns stop; their history is kept."
  end
  if not util.confirm(question) then
    return
  end
  local params = everywhere and vim.empty_dict() or { project = path }
  call("codex/session/killAll", params, function(result)
    local n = #(result.killed or {})
    util.notify(string.format("codex-sessions: killed %d session%s%s", n, n == 1 and "" or "s",
      everywhere and " in every project" or ""), vim.log.levels.INFO)
  end)
end

--- Delete a session that is not running, record and transcript, once the user said yes.
function M.forget(ref, session)
  local name = session and session.name or (type(ref) == "string" and ref) or "this session"
  if not util.confirm("Forget " .. name .. " for good? Its record and transcript are deleted.") then
    return
  end
  rpc.request("codex/session/forget", M.ref(ref), function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    state.forget(result.forgotten)
    util.notify("codex-sessions: forgot " .. name, vim.log.levels.INFO)
  end)
end

function M.rename(ref, new_name)
  call("codex/session/rename", vim.tbl_extend("force", M.ref(ref), { newName = new_name }))
end

--- Send `text` (a session that is not running is resumed first, by the daemon).
function M.send(ref, text)
  call("codex/session/send", vim.tbl_extend("force", M.ref(ref), { text = text }))
end

function M.cancel(ref)
  call("codex/session/cancel", M.ref(ref))
end

--- Show the report of the last finished turn in a float.
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
    local lines = vim.split(text, "\n", { plain = true })
    local buf = vim.api.nvim_create_buf(false, true)
    vim.bo[buf].bufhidden = "wipe"
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    vim.bo[buf].modifiable = false
    vim.bo[buf].filetype = "codex_sessions_report"
    vim.b[buf].codex_sessions_report = result.report
    local width = 40
    for _, line in ipairs(lines) do
      width = math.max(width, vim.fn.strdisplaywidth(line) + 2)
    end
    local win = util.float(buf, { width = width, height = #lines, title = "report" })
    vim.api.nvim_set_option_value("wrap", true, { scope = "local", win = win })
  end)
end

--- Answer a pending request of a session (`decision`: accept, acceptForSession, decline, cancel).
function M.respond(ref, request_id, decision)
  call("codex/session/respond", vim.tbl_extend("force", M.ref(ref), { requestId = request_id, decision = decision }))
end

local DECISIONS = {
  { "accept", "accept" },
  { "acceptForSession", "accept for the whole session" },
  { "decline", "decline" },
  { "cancel", "decline and end the turn" },
  { "open", "open the session" },
}

--- Everything that waits on the user, across sessions and projects: pick one, then an answer.
function M.pending()
  rpc.request("codex/session/list", { waiting = true }, function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    local entries = {}
    for _, s in ipairs(result.sessions or {}) do
      state.update(s)
      for _, r in ipairs(type(s.pending) == "table" and s.pending or {}) do
        table.insert(entries, { session = s, request = r })
      end
    end
    if #entries == 0 then
      util.notify("codex-sessions: nothing waits on you", vim.log.levels.INFO)
      return
    end
    vim.ui.select(entries, {
      prompt = "Waiting on you",
      kind = "codex_sessions_pending",
      format_item = function(e)
        local r = e.request
        local what = r.command
        if what == nil or what == vim.NIL then
          what = r.reason ~= vim.NIL and r.reason or r.kind
        end
        return string.format("%s/%s: %s %s", e.session.project.name, e.session.name, r.kind or "request",
          tostring(what))
      end,
    }, function(entry)
      if not entry then
        return
      end
      vim.ui.select(DECISIONS, {
        prompt = entry.session.name .. ": " .. tostring(entry.request.command ~= vim.NIL and entry.request.command
          or entry.request.kind),
        format_item = function(d) return d[2] end,
      }, function(decision)
        if not decision then
          return
        elseif decision[1] == "open" then
          M.open_session(entry.session)
        else
          M.respond({ id = entry.session.id }, entry.request.requestId, decision[1])
        end
      end)
    end)
  end)
end

--- A reference to lines `first`..`last` of buffer `buf` (or the whole file when `first`
--- is nil), relative to the project root: "src/a.py:10-20" and the lines in a fence.
local function context(buf, root, first, last)
  local path = vim.uv.fs_realpath(vim.api.nvim_buf_get_name(buf)) or vim.api.nvim_buf_get_name(buf)
  local rel = vim.startswith(path, root .. "/") and path:sub(#root + 2) or path
  if not first then
    return "File: " .. rel
  end
  local lines = vim.api.nvim_buf_get_lines(buf, first - 1, last, false)
  local where = first == last and string.format("%s:%d", rel, first) or string.format("%s:%d-%d", rel, first, last)
  local fence = "```"
  for _, line in ipairs(lines) do
    while line:find(fence, 1, true) do
      fence = fence .. "`"
    end
  end
  return string.format("%s\n%s%s\n%s\n%s", where, fence, vim.bo[buf].filetype, table.concat(lines, "\n"), fence)
end

--- Send the current file (lines `first`..`last` of it, or a reference to the whole
--- file) to a session: with `prompt`, at once (the prompt, then the context); without,
--- into the session's prompt area to finish writing there.
function M.send_context(name, prompt, first, last)
  local buf = vim.api.nvim_get_current_buf()
  local file = vim.api.nvim_buf_get_name(buf)
  if vim.bo[buf].buftype ~= "" or file == "" then
    util.notify("codex-sessions: this buffer is not a file; send a selection or a file from a file's buffer",
      vim.log.levels.ERROR)
    return
  end
  local dir = vim.fn.fnamemodify(file, ":p:h")
  rpc.request("codex/project/resolve", { project = dir }, function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    local text = context(buf, result.project.root, first, last)
    local ref = M.ref(name, (name and name ~= "") and dir or nil)
    if prompt and prompt ~= "" then
      text = prompt .. "\n\n" .. text
    end
    local function open(session)
      local session_buf = M.open_session(session)
      if not (prompt and prompt ~= "") then
        -- the context, then an empty line for the question, the cursor on it
        require("codex_sessions.buffer").add_to_prompt(session_buf, text .. "\n")
        pcall(vim.api.nvim_win_set_cursor, 0, { vim.api.nvim_buf_line_count(session_buf), 0 })
      end
    end
    if ref.id then
      if prompt and prompt ~= "" then
        M.send(ref, text)
      else
        open(state.get(ref.id) or require("codex_sessions.buffer").session_of(0))
      end
      return
    end
    -- by name: start resumes or creates it, and sends the prompt if there is one
    local sending = prompt and prompt ~= ""
    M.start(ref.name, sending and text or nil, dir, { background = sending }, function(started)
      if not sending then
        open(started.session)
      end
    end)
  end)
end

return M
