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
    local function of(buf)
      local session = buffer.session_of(buf)
      if session then
        return session.id
      end
      local view = vim.b[buf].codex_sessions_id -- a session's diff or commit message
      return type(view) == "string" and view or nil
    end
    local id = of(vim.api.nvim_get_current_buf())
    if not id and not project then
      local win = util.session_window()
      id = win and of(vim.api.nvim_win_get_buf(win))
    end
    if id and not project then
      return { id = id }
    end
    name = config.DEFAULT_NAME
  end
  return { project = project or util.project_path(), name = name }
end

--- The cached session a reference (from M.ref) means, if this Neovim knows it.
function M.cached(ref)
  if ref.id then
    return state.get(ref.id)
  end
  return ref.project and ref.name and state.find(ref.project, ref.name) or nil
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

--- Say the daemon's `warnings` about a start (uncommitted changes a new work tree does
--- not get, write scopes that meet, options a resumed session ignores), one WARN each.
local function warn(name, warnings)
  for _, w in ipairs(type(warnings) == "table" and warnings or {}) do
    util.notify(util.one_line("codex-sessions: " .. name .. ": " .. tostring(w)), vim.log.levels.WARN)
  end
end

--- Start session `name` of the project (resuming a stopped one of that name; with
--- `opts.fresh`, a new conversation, the old one renamed NAME~N), send `prompt` if given,
--- and open its buffer (unless `opts.background`). `opts` may also give `isolation`
--- ("shared" or "worktree"), `role`, `scope` (a list of globs), `model`, `effort`,
--- `notes` (the notetaker) and `learn` (learn mode, notes too); a new session gets the
--- configured defaults of those left out. `notes`/`learn` given for an existing session
--- switch it from its next prompt.
function M.start(name, prompt, project, opts, on_done)
  if type(opts) == "function" then -- start(name, prompt, project, on_done)
    opts, on_done = nil, opts
  end
  opts = opts or {}
  local o = config.options
  local params = {
    project = project or util.project_path(),
    name = (name and name ~= "") and name or config.DEFAULT_NAME,
    prompt = prompt,
    fresh = opts.fresh or nil,
    isolation = opts.isolation,
    role = opts.role,
    writeScope = opts.scope,
    model = opts.model,
    effort = opts.effort,
    notes = opts.notes,
    learn = opts.learn,
  }
  -- the configured defaults are for new sessions (a resumed one keeps its own, and the
  -- daemon would warn that they are not applied)
  if opts.fresh or not state.find(params.project, params.name) then
    params.model = params.model or o.model
    params.effort = params.effort or o.effort
    params.isolation = params.isolation or o.isolation
    params.sandbox = o.sandbox
    params.approvalPolicy = o.approval_policy
    -- (the daemon has it as the `notes` initialization option too; this follows a
    -- setup() made after connecting; false is never sent for the user, as a session the
    -- cache does not know yet may exist and keep its own)
    if params.notes == nil and o.notes then
      params.notes = true
    end
  end
  call("codex/session/start", params, function(result)
    warn(result.session.name, result.warnings)
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

local function running_turn(s)
  return s ~= nil and (s.status == "running" or s.status == "waiting")
end

--- Add `text` to the turn the session runs (`codex/session/steer`); if that turn ended
--- meanwhile, send it as the next prompt. `on_sent(result)` once it is taken.
function M.steer(ref, text, on_sent)
  local r = M.ref(ref)
  rpc.request("codex/session/steer", vim.tbl_extend("force", r, { text = text }), function(err, result)
    if err and err.code == -32007 and type(err.data) == "table" and err.data.reason == "noTurn" then
      call("codex/session/send", vim.tbl_extend("force", r, { text = text }), on_sent)
      return
    elseif err then
      rpc.notify_error(err)
      return
    end
    if result.session then
      state.update(result.session)
    end
    if on_sent then
      on_sent(result)
    end
  end)
end

--- Send `text` (a session that is not running is resumed first, by the daemon). While
--- the session runs a turn, the `steer` option says what happens: "ask" whether to add
--- it to that turn, "always" add it, false send it (the daemon refuses: busy).
--- `on_sent(result)` once it is taken (not when the user kept it).
function M.send(ref, text, on_sent)
  local r = M.ref(ref)
  local s = M.cached(r)
  local how = config.options.steer
  if how and running_turn(s) then
    if how == "ask" and not util.confirm(string.format("%s is running a turn: add this to it?", s.name)) then
      local cancel = config.options.keys.session.cancel
      util.notify(string.format("codex-sessions: not sent: %s is still running its turn (%s cancels it)", s.name,
        cancel and util.key_label(cancel) or ":CodexSessions cancel"), vim.log.levels.INFO)
      return
    end
    M.steer(r, text, on_sent)
    return
  end
  call("codex/session/send", vim.tbl_extend("force", r, { text = text }), on_sent)
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

--- Turn a session's notetaker on or off (off ends learn mode too); it spends model tokens.
function M.notes(ref, on)
  call("codex/session/notes", vim.tbl_extend("force", M.ref(ref), { on = on }), function(result)
    local s = result.session
    util.notify(string.format("codex-sessions: %s: %s", s.name, on
      and "notes on: after each turn the notetaker adds to learnings.md (one model request per turn)"
      or "notes off" .. ((type(s.learn) == "table" and s.learn.endedBecause == "off") and ", learn mode off" or "")),
      vim.log.levels.INFO)
  end)
end

--- Turn a session's learn mode on (notes too) or off.
function M.learn(ref, on)
  call("codex/session/learn", vim.tbl_extend("force", M.ref(ref), { on = on }), function(result)
    util.notify(string.format("codex-sessions: %s: %s", result.session.name, on
      and "learn mode on: each prompt is rewritten with what the project learned, for you to review"
      or "learn mode off"), vim.log.levels.INFO)
  end)
end

local watched = {} -- buf -> fs_event handle of the folder of the learnings.md it shows

--- Read `buf` (a learnings.md) again whenever the daemon rewrites it, while it is loaded.
local function watch(buf, path)
  if watched[buf] then
    return
  end
  local handle = vim.uv.new_fs_event()
  if not handle then
    return
  end
  local name = vim.fn.fnamemodify(path, ":t")
  local ok = pcall(handle.start, handle, vim.fn.fnamemodify(path, ":h"), {}, function(err, file)
    if err or (file and file ~= name) then
      return
    end
    vim.schedule(function()
      if vim.api.nvim_buf_is_loaded(buf) and not vim.bo[buf].modified then
        vim.cmd("silent! checktime " .. buf)
      end
    end)
  end)
  if not ok then
    handle:close()
    return
  end
  watched[buf] = handle
  vim.api.nvim_create_autocmd({ "BufUnload", "BufWipeout" }, {
    buffer = buf,
    once = true,
    callback = function()
      if watched[buf] then
        watched[buf]:stop()
        watched[buf]:close()
        watched[buf] = nil
      end
    end,
  })
end

--- Open the project's learnings.md (the notetaker's entries of every session of the
--- project); say so when there are none yet.
function M.learnings(project)
  rpc.request("codex/project/learnings", { project = project or util.project_path() }, function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    local name = type(result.project) == "table" and result.project.name or "this project"
    local path = type(result.path) == "string" and result.path or ""
    if #(result.entries or {}) == 0 or vim.fn.filereadable(path) == 0 then
      util.notify(string.format("codex-sessions: no learnings yet in %s: the notetaker writes them after each turn "
        .. "of a session with notes (:CodexSessions notes on, or start --notes)", name), vim.log.levels.INFO)
      return
    end
    local ok, win, buf = pcall(util.show_file, path)
    if not ok then
      util.notify(util.one_line("codex-sessions: cannot open " .. path .. ": " .. tostring(win)), vim.log.levels.ERROR)
      return
    end
    vim.cmd("silent! checktime " .. buf)
    if type(result.project) == "table" and type(result.project.root) == "string" then
      vim.b[buf].codex_sessions_project = result.project.root -- its commands act on the project
    end
    watch(buf, path)
    -- the daemon rewrites it with every entry: read it again quietly, do not write it
    vim.bo[buf].autoread = true
    vim.bo[buf].readonly = true
    pcall(vim.api.nvim_win_set_cursor, win, { vim.api.nvim_buf_line_count(buf), 0 })
  end)
end

--- Answer the pending request `entry` ({session, request}) picked from the inbox: a
--- prompt review opens, anything else asks the answer.
local function answer_picked(entry)
  if require("codex_sessions.review").is_review(entry.request) then
    require("codex_sessions.review").open(entry.session, entry.request)
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
end

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
        if r.kind == "promptReview" then
          return string.format("%s/%s: prompt review: %s", e.session.project.name, e.session.name,
            util.one_line(r.original))
        end
        local what = r.command
        if what == nil or what == vim.NIL then
          what = r.reason ~= vim.NIL and r.reason or r.kind
        end
        return string.format("%s/%s: %s %s", e.session.project.name, e.session.name, r.kind or "request",
          tostring(what))
      end,
    }, function(entry)
      if entry then
        answer_picked(entry)
      end
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

-- ---------------------------------------------------------------------------------------
-- Codex's thread model: fork, review, adopt; numbered jumps; Codex's own terminal UI

--- Continue the session in a new one, `new_name`, on a new Codex thread holding its
--- turns 1..`at_turn` (all when nil); open it. The session itself is untouched.
function M.fork(ref, new_name, at_turn)
  if not new_name or new_name == "" then
    util.notify("codex-sessions: a fork needs a name of its own", vim.log.levels.ERROR)
    return
  end
  local params = vim.tbl_extend("force", M.ref(ref), { newName = new_name, atTurn = at_turn })
  call("codex/session/fork", params, function(result)
    M.open_session(result.session)
    local from = M.cached(params)
    util.notify(string.format("codex-sessions: %s continues %s from %s", result.session.name,
      from and from.name or "it", at_turn and ("turn " .. at_turn) or "its last turn"), vim.log.levels.INFO)
  end)
end

--- Ask the name of a fork of `session` at turn `at_turn` (nil: all), then fork.
function M.fork_ask(session, at_turn)
  vim.ui.input({
    prompt = string.format("Continue %s%s in a new session named: ", session.name,
      at_turn and (" from turn " .. at_turn) or ""),
  }, function(name)
    name = name and vim.trim(name) or ""
    if name ~= "" then
      M.fork({ id = session.id }, name, at_turn)
    end
  end)
end

--- Start Codex's review of the project's changes in a session of its own and open it.
--- `target`: "uncommittedChanges" (default), { baseBranch = B } or { commit = SHA };
--- `name`: default review, review-2, ... (the daemon's choice).
function M.review(target, name, project)
  local params = { project = project or util.project_path(), target = target or "uncommittedChanges", name = name }
  call("codex/session/review", params, function(result)
    M.open_session(result.session)
    local what = "the uncommitted changes"
    if type(target) == "table" then
      what = target.baseBranch and ("the changes against " .. target.baseBranch) or ("commit " .. tostring(target.commit))
    end
    util.notify(string.format("codex-sessions: %s reviews %s", result.session.name, what), vim.log.levels.INFO)
  end)
end

local function first_line(text)
  return (vim.split(tostring(text or ""), "\n", { plain = true })[1])
end

--- Make one of Codex's own conversations of the project (made in its terminal UI, say)
--- a session: pick it with vim.ui.select, name it (or `name`), and open it.
function M.adopt(name, project)
  project = project or util.project_path()
  rpc.request("codex/project/threads", { project = project }, function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    local threads = result.threads or {}
    if #threads == 0 then
      util.notify("codex-sessions: Codex has no conversation in " .. vim.fn.fnamemodify(project, ":~")
        .. " that is not a session already", vim.log.levels.INFO)
      return
    end
    vim.ui.select(threads, {
      prompt = "Adopt Codex conversation",
      kind = "codex_sessions_thread",
      format_item = function(t)
        local title = first_line(t.title)
        return string.format("%s  (%s)", title ~= "" and title or t.threadId, tostring(t.updatedAt or ""))
      end,
    }, function(thread)
      if not thread then
        return
      end
      local function adopt(as)
        as = as and vim.trim(as) or ""
        if as == "" then
          return
        end
        call("codex/session/adopt", { project = project, threadId = thread.threadId, name = as }, function(adopted)
          M.open_session(adopted.session)
          util.notify(string.format("codex-sessions: Codex conversation %s is now %s", thread.threadId,
            adopted.session.name), vim.log.levels.INFO)
        end)
      end
      if name and name ~= "" then
        adopt(name)
      else
        vim.ui.input({ prompt = string.format("Adopt \"%s\" as session: ", first_line(thread.title)) }, adopt)
      end
    end)
  end)
end

--- Open the project's session number `n` (1..10), numbered as the list numbers them.
function M.jump(n)
  state.when_synced(function()
    local path = util.project_path()
    local root = state.root_for(path)
    local numbered = root and state.numbered(root) or {}
    local s = numbered[n]
    if not s then
      util.notify(string.format("codex-sessions: no session number %d in %s (it has %d)", n,
        vim.fn.fnamemodify(root or path, ":~"), #numbered), vim.log.levels.ERROR)
      return
    end
    M.open_session(s)
  end)
end

local tuis = {} -- session id -> terminal buffer of Codex's own terminal UI

--- Close the terminal buffer `buf`: its tab page when it is alone there, else its window
--- goes back to what it showed before.
local function close_terminal(buf)
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    local tab = vim.api.nvim_win_get_tabpage(win)
    if #vim.api.nvim_tabpage_list_wins(tab) == 1 and #vim.api.nvim_list_tabpages() > 1 then
      pcall(vim.api.nvim_win_close, win, true)
    end
  end
  util.leave(buf)
  pcall(vim.api.nvim_buf_delete, buf, { force = true })
end

--- Open Codex's own terminal UI on the session's conversation in a :terminal of a new
--- tab page (`codex/session/tui`: it joins the daemon's Codex on the session's thread,
--- so what is typed there shows in the session's buffer too). Leaving the TUI closes
--- the tab; a TUI already open for the session is shown again.
function M.tui(ref)
  local r = M.ref(ref)
  rpc.request("codex/session/tui", r, function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    local s = M.cached(r)
    local id = s and s.id or result.threadId
    local old = tuis[id]
    if old and vim.api.nvim_buf_is_valid(old) and vim.fn.jobwait({ vim.b[old].terminal_job_id or -1 }, 0)[1] == -1 then
      local win = vim.fn.win_findbuf(old)[1]
      if win then
        vim.api.nvim_set_current_win(win)
      else
        vim.cmd("tab sbuffer " .. old)
      end
      vim.cmd("startinsert")
      return
    end
    vim.cmd("tabnew")
    local buf = vim.api.nvim_get_current_buf()
    vim.bo[buf].bufhidden = "wipe"
    local env = type(result.env) == "table" and next(result.env) and result.env or nil
    local cwd = s and s.project and s.project.root or nil
    local opts = {
      env = env,
      cwd = cwd,
      on_exit = function(_, code)
        vim.schedule(function()
          if tuis[id] == buf then
            tuis[id] = nil
          end
          if code == 0 and vim.api.nvim_buf_is_valid(buf) then
            close_terminal(buf)
          end
        end)
      end,
    }
    local ok, job
    if vim.fn.has("nvim-0.11") == 1 then
      opts.term = true
      ok, job = pcall(vim.fn.jobstart, result.command, opts)
    else
      ok, job = pcall(vim.fn.termopen, result.command, opts)
    end
    if not ok or type(job) ~= "number" or job <= 0 then
      close_terminal(buf)
      util.notify("codex-sessions: cannot start Codex's terminal UI (" .. tostring(result.command[1]) .. "): "
        .. tostring(job), vim.log.levels.ERROR)
      return
    end
    tuis[id] = buf
    if s then
      pcall(vim.api.nvim_buf_set_name, buf, string.format("codex-tui://%s/%s", s.project.name, s.name))
    end
    vim.b[buf].codex_sessions_id = s and s.id or nil
    vim.cmd("startinsert")
  end)
end

return M
