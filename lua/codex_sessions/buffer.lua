--- Session buffers: one scratch buffer per session, named by the sidecar's `bufferName`.
--- Layout: a header line, the transcript, a separator, and the prompt area below it.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local util = require("codex_sessions.util")

local M = {}

local ns = vim.api.nvim_create_namespace("codex_sessions")
local ns_req = vim.api.nvim_create_namespace("codex_sessions_requests")
local OUTPUT_PREFIX = "  │ "

local H = {
  by_buf = {}, -- buf -> state
  by_id = {}, -- session id -> buf
}

M.namespace = ns

-- ---------------------------------------------------------------------------------------
-- Helpers

local function valid(buf)
  return buf and vim.api.nvim_buf_is_valid(buf)
end

--- The state of buffer `buf` (current buffer by default) if it is a session buffer.
function M.state(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  return H.by_buf[buf]
end

--- The buffer of session `id`, if there is one.
function M.buf_of(id)
  local buf = H.by_id[id]
  if valid(buf) then
    return buf
  end
  H.by_id[id] = nil
end

--- The session shown in buffer `buf` (current buffer by default).
function M.session_of(buf)
  local st = M.state(buf)
  return st and st.session
end

local function sep_row(st)
  local mark = vim.api.nvim_buf_get_extmark_by_id(st.buf, ns, st.sep, {})
  return mark[1]
end

local function split_lines(text)
  return vim.split(text or "", "\n", { plain = true })
end

--- Write lines outside the undo history, so that `u` in the prompt area never undoes
--- the transcript.
local function set_lines(st, first, last, lines)
  local undolevels = vim.bo[st.buf].undolevels
  vim.bo[st.buf].undolevels = -1
  vim.api.nvim_buf_set_lines(st.buf, first, last, false, lines)
  vim.bo[st.buf].undolevels = undolevels
end

--- Highlight whole lines [first, first + count) with `group`.
local function hl_lines(st, first, count, group)
  if not group then
    return
  end
  for row = first, first + count - 1 do
    local line = vim.api.nvim_buf_get_lines(st.buf, row, row + 1, false)[1] or ""
    if #line > 0 then
      vim.api.nvim_buf_set_extmark(st.buf, ns, row, 0, { end_col = #line, hl_group = group })
    end
  end
end

--- Keep windows that showed the end of the transcript at its end.
local function follow_windows(st, before_sep, fn)
  local wins = {}
  for _, win in ipairs(vim.fn.win_findbuf(st.buf)) do
    local row = vim.api.nvim_win_get_cursor(win)[1] - 1
    if row >= before_sep - 1 and row < before_sep then
      table.insert(wins, win)
    end
  end
  fn()
  local sep = sep_row(st)
  for _, win in ipairs(wins) do
    if vim.api.nvim_win_is_valid(win) then
      pcall(vim.api.nvim_win_set_cursor, win, { math.max(sep, 1), 0 })
    end
  end
end

--- Write rendered lines (list of {text, group}) over rows [first, last).
local function write_rendered(st, first, last, rendered)
  local lines = {}
  for _, l in ipairs(rendered) do
    table.insert(lines, l[1])
  end
  set_lines(st, first, last, lines)
  for i, l in ipairs(rendered) do
    hl_lines(st, first + i - 1, 1, l[2])
  end
end

--- Append rendered lines (list of {text, group}) to the end of the transcript.
--- Returns the first row written.
local function append(st, rendered)
  local sep = sep_row(st)
  follow_windows(st, sep, function()
    write_rendered(st, sep, sep, rendered)
  end)
  return sep
end

--- Replace the open tail block (the last `st.tail.nlines` transcript lines).
local function replace_tail(st, rendered)
  local sep = sep_row(st)
  local first = sep - st.tail.nlines
  follow_windows(st, sep, function()
    vim.api.nvim_buf_clear_namespace(st.buf, ns, first, sep)
    write_rendered(st, first, sep, rendered)
    -- the separator extmark may have moved into the replaced range; put it back
    local want = first + #rendered
    if sep_row(st) ~= want then
      vim.api.nvim_buf_set_extmark(st.buf, ns, want, 0, { id = st.sep })
    end
  end)
  st.tail.nlines = #rendered
end

--- Add streamed `text` at the end of the open tail block without re-rendering it, so a
--- piece costs the same at the end of a long message as at its start.
local function extend_tail(st, text, prefix, group)
  local sep = sep_row(st)
  local pieces = split_lines(text)
  for i = 2, #pieces do
    pieces[i] = prefix .. pieces[i]
  end
  local first_new
  local undolevels = vim.bo[st.buf].undolevels
  follow_windows(st, sep, function()
    vim.bo[st.buf].undolevels = -1
    if st.tail.needs_line then -- the block has no text line yet: start one
      pieces[1] = prefix .. pieces[1]
      vim.api.nvim_buf_set_lines(st.buf, sep, sep, false, pieces)
      first_new = sep
      st.tail.nlines = st.tail.nlines + #pieces
      st.tail.needs_line = false
    else
      local row = sep - 1
      local col = #(vim.api.nvim_buf_get_lines(st.buf, row, sep, false)[1] or "")
      vim.api.nvim_buf_set_text(st.buf, row, col, row, col, pieces)
      first_new = sep
      st.tail.nlines = st.tail.nlines + #pieces - 1
    end
    vim.bo[st.buf].undolevels = undolevels
    hl_lines(st, first_new, sep_row(st) - first_new, group)
  end)
end

-- ---------------------------------------------------------------------------------------
-- Rendering of transcript items

local function keys_hint()
  local k = config.options.keys.session
  local parts = {}
  if k.accept then table.insert(parts, k.accept .. " accept") end
  if k.accept_for_session then table.insert(parts, k.accept_for_session .. " accept for session") end
  if k.decline then table.insert(parts, k.decline .. " decline") end
  return table.concat(parts, " · ")
end

local function prefixed(text, first_prefix, rest_prefix, group)
  local out = {}
  for i, line in ipairs(split_lines(text)) do
    table.insert(out, { (i == 1 and first_prefix or rest_prefix) .. line, group })
  end
  return out
end

local function render_command(item, running_output)
  local out = {}
  local exit = item.exitCode
  local state
  if item.status == "declined" then
    state = "[declined]"
  elseif exit == nil or exit == vim.NIL then
    state = running_output and "[running]" or "[no exit code]"
  else
    state = "[exit " .. tostring(exit) .. "]"
  end
  local ok = exit == 0
  table.insert(out, { "$ " .. (item.command or "?") .. "  " .. state,
    ok and "CodexSessionsCommand" or "CodexSessionsCommandFailed" })
  local output = running_output or item.output
  if type(output) == "string" and output ~= "" then
    output = output:gsub("\n$", "")
    for _, line in ipairs(split_lines(output)) do
      table.insert(out, { OUTPUT_PREFIX .. line, "CodexSessionsOutput" })
    end
  end
  return out
end

--- Lines for one transcript item: list of {text, highlight group}.
function M.render_item(item)
  local kind = item.kind
  if kind == "user" then
    local out = { { "", nil } }
    vim.list_extend(out, prefixed(item.text, "> ", "  ", "CodexSessionsUser"))
    return out
  elseif kind == "agent" then
    return prefixed(item.text, "", "", "CodexSessionsAgent")
  elseif kind == "reasoning" then
    return prefixed(item.text, "(thinking) ", "           ", "CodexSessionsReasoning")
  elseif kind == "command" then
    return render_command(item)
  elseif kind == "fileChange" then
    local out = {}
    for _, change in ipairs(item.changes or {}) do
      table.insert(out, { string.format("~ %s (%s)", change.path, change.kind), "CodexSessionsFileChange" })
    end
    return out
  elseif kind == "request" then
    if item.decision ~= nil and item.decision ~= vim.NIL then
      return { { string.format("? %s: %s", item.requestId, item.decision), "CodexSessionsDecision" } }
    end
    local what = item.command
    if what == nil or what == vim.NIL then
      what = item.requestKind or "request"
      if item.changes and item.changes ~= vim.NIL then
        local paths = {}
        for _, c in ipairs(item.changes) do
          table.insert(paths, c.path)
        end
        what = what .. " " .. table.concat(paths, ", ")
      end
    end
    local reason = (item.reason and item.reason ~= vim.NIL) and ("  (" .. item.reason .. ")") or ""
    return {
      { string.format("? approval needed [%s]: %s%s", item.requestId, what, reason), "CodexSessionsRequest" },
      { "  " .. keys_hint(), "CodexSessionsHint" },
    }
  elseif kind == "error" then
    return prefixed(item.text, "! ", "  ", "CodexSessionsError")
  elseif kind == "status" then
    return { { "· " .. tostring(item.status), "CodexSessionsStatusLine" } }
  end
  return { { string.format("[%s] %s", tostring(kind), vim.json.encode(item)), "CodexSessionsStatusLine" } }
end

local function header_text(s)
  local parts = {
    string.format("codex %s:%s", s.project and s.project.name or "?", s.name or "?"),
    s.status or "?",
  }
  if s.turns then table.insert(parts, "turns " .. tostring(s.turns)) end
  if s.pending and #s.pending > 0 then table.insert(parts, #s.pending .. " pending") end
  if s.error and s.error ~= vim.NIL then
    table.insert(parts, "error: " .. vim.split(tostring(s.error), "\n", { plain = true })[1])
  end
  if s.project then table.insert(parts, s.project.root) end
  return table.concat(parts, "  ·  ")
end

local function render_header(st)
  local text = header_text(st.session)
  set_lines(st, 0, 1, { text })
  vim.api.nvim_buf_clear_namespace(st.buf, ns, 0, 1)
  -- clearing removes every extmark on row 0 of ns; the separator is never on row 0
  vim.api.nvim_buf_set_extmark(st.buf, ns, 0, 0, { end_col = #text, hl_group = "CodexSessionsHeader" })
end

--- Render one transcript item or streamed piece into the buffer.
local function show(st, item)
  local kind = item.kind
  if kind == "agentDelta" then
    if st.tail and st.tail.id == item.itemId and st.tail.kind == "agent" then
      extend_tail(st, item.text or "", "", "CodexSessionsAgent")
    else
      local rendered = prefixed(item.text or "", "", "", "CodexSessionsAgent")
      append(st, rendered)
      st.tail = { id = item.itemId, kind = "agent", nlines = #rendered }
      st.streamed[item.itemId] = true
    end
    st.deltas = st.deltas + 1
    return
  elseif kind == "commandDelta" then
    if st.tail and st.tail.id == item.itemId and st.tail.kind == "command" then
      extend_tail(st, item.text or "", OUTPUT_PREFIX, "CodexSessionsOutput")
    else
      local rendered = render_command({ command = "…" }, "")
      append(st, rendered)
      st.tail = { id = item.itemId, kind = "command", nlines = #rendered, needs_line = true }
      extend_tail(st, item.text or "", OUTPUT_PREFIX, "CodexSessionsOutput")
    end
    st.deltas = st.deltas + 1
    return
  end
  -- a transcript item
  if item.seq then
    if st.last_seq and item.seq <= st.last_seq then
      return
    end
    st.last_seq = item.seq
  end
  local rendered = M.render_item(item)
  if item.itemId then
    st.complete[item.itemId] = true
  end
  if item.itemId and st.tail and st.tail.id == item.itemId then
    replace_tail(st, rendered)
    st.tail = nil
    return
  end
  if kind == "agent" and item.itemId and st.streamed[item.itemId] then
    return -- already shown as it streamed
  end
  st.tail = nil
  if #rendered == 0 then
    return
  end
  local first = append(st, rendered)
  if kind == "request" and (item.decision == nil or item.decision == vim.NIL) then
    local mark = vim.api.nvim_buf_set_extmark(st.buf, ns_req, first, 0, {})
    st.request_marks[mark] = item.requestId
  end
end

--- Items from a `codex/session/output` notification.
function M.on_output(id, items)
  local buf = M.buf_of(id)
  if not buf then
    return
  end
  local st = H.by_buf[buf]
  if st.loading then
    vim.list_extend(st.backlog, items)
    return
  end
  for _, item in ipairs(items) do
    show(st, item)
  end
end

--- A `codex/session/changed` session object: header and buffer name follow it.
function M.on_changed(session)
  local buf = M.buf_of(session.id)
  if not buf then
    return
  end
  local st = H.by_buf[buf]
  st.session = session
  M.set_name(buf, session.bufferName)
  render_header(st)
end

--- Give `buf` the name `name`, dropping the placeholder buffer Neovim keeps for the old one.
function M.set_name(buf, name)
  local old = vim.fn.bufname(buf)
  if old == name then
    return
  end
  local old_full = vim.api.nvim_buf_get_name(buf)
  -- a stale buffer with the wanted name (unloaded placeholder) would block the rename
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if b ~= buf and vim.fn.bufname(b) == name and not H.by_buf[b] and not vim.api.nvim_buf_is_loaded(b) then
      pcall(vim.api.nvim_buf_delete, b, { force = true })
    end
  end
  local ok, err = pcall(vim.api.nvim_buf_set_name, buf, name)
  if not ok then
    vim.notify("codex-sessions: cannot name buffer " .. name .. ": " .. tostring(err), vim.log.levels.ERROR)
    return
  end
  if old_full ~= "" then
    for _, b in ipairs(vim.api.nvim_list_bufs()) do
      if b ~= buf and vim.api.nvim_buf_get_name(b) == old_full and not vim.api.nvim_buf_is_loaded(b) then
        pcall(vim.api.nvim_buf_delete, b, { force = true })
      end
    end
  end
end

-- ---------------------------------------------------------------------------------------
-- Prompt area and approvals

--- The text in the prompt area of `buf`.
function M.prompt_text(buf)
  local st = M.state(buf)
  local lines = vim.api.nvim_buf_get_lines(st.buf, sep_row(st) + 1, -1, false)
  return vim.trim(table.concat(lines, "\n"))
end

function M.clear_prompt(buf)
  local st = M.state(buf)
  set_lines(st, sep_row(st) + 1, -1, { "" })
end

--- Send what the prompt area holds.
function M.send_prompt(buf)
  local st = M.state(buf)
  if not st then
    return
  end
  local text = M.prompt_text(st.buf)
  if text == "" then
    vim.notify("codex-sessions: the prompt area is empty; write below the separator line", vim.log.levels.WARN)
    return
  end
  rpc.request("codex/session/send", { id = st.id, text = text }, function(err)
    if err then
      rpc.notify_error(err)
      return
    end
    if valid(st.buf) and M.prompt_text(st.buf) == text then
      M.clear_prompt(st.buf)
    end
  end)
end

--- The pending request nearest above the cursor, else the oldest pending one.
function M.request_at_cursor(buf)
  local st = M.state(buf)
  if not st then
    return nil
  end
  local pending = {}
  for _, r in ipairs(st.session.pending or {}) do
    pending[r.requestId] = r
  end
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  if vim.api.nvim_get_current_buf() == st.buf then
    local marks = vim.api.nvim_buf_get_extmarks(st.buf, ns_req, { row, 0 }, 0, {})
    for _, m in ipairs(marks) do
      local rid = st.request_marks[m[1]]
      if rid and pending[rid] then
        return rid
      end
    end
  end
  local first = (st.session.pending or {})[1]
  return first and first.requestId or nil
end

--- Answer the pending request under the cursor (or the oldest) with `decision`.
function M.respond(decision, buf)
  local st = M.state(buf)
  if not st then
    vim.notify("codex-sessions: not a session buffer", vim.log.levels.ERROR)
    return
  end
  local rid = M.request_at_cursor(st.buf)
  if not rid then
    vim.notify("codex-sessions: session " .. st.session.name .. " has no pending request", vim.log.levels.WARN)
    return
  end
  rpc.request("codex/session/respond", { id = st.id, requestId = rid, decision = decision }, function(err, result)
    if err then
      rpc.notify_error(err)
    elseif result and result.session then
      require("codex_sessions.state").update(result.session)
    end
  end)
end

-- ---------------------------------------------------------------------------------------
-- Creating, loading, showing

local function set_window_options(win)
  local function set(name, value)
    pcall(vim.api.nvim_set_option_value, name, value, { scope = "local", win = win })
  end
  set("foldmethod", "expr")
  set("foldexpr", "v:lua.require'codex_sessions.buffer'.foldexpr(v:lnum)")
  set("foldlevel", 0)
  set("foldenable", true)
  set("wrap", true)
  set("linebreak", true)
  set("number", false)
  set("relativenumber", false)
  set("spell", false)
end

--- Fold level of line `lnum`: command output is folded.
function M.foldexpr(lnum)
  local line = vim.fn.getline(lnum)
  return vim.startswith(line, OUTPUT_PREFIX) and 1 or 0
end

local function map_keys(buf)
  local k = config.options.keys.session
  local function map(modes, lhs, fn, desc)
    if lhs then
      vim.keymap.set(modes, lhs, fn, { buffer = buf, nowait = true, silent = true, desc = "codex-sessions: " .. desc })
    end
  end
  map({ "n", "i" }, k.send, function() M.send_prompt(buf) end, "send the prompt area")
  map("n", k.send_normal, function()
    local st = M.state(buf)
    local row = vim.api.nvim_win_get_cursor(0)[1] - 1
    if row > sep_row(st) then
      M.send_prompt(buf)
    else
      local rid = M.request_at_cursor(buf)
      local marks = vim.api.nvim_buf_get_extmarks(buf, ns_req, { row, 0 }, { row, 0 }, {})
      if rid and #marks > 0 then
        vim.ui.select({ "accept", "acceptForSession", "decline", "cancel" }, { prompt = "Answer " .. rid }, function(choice)
          if choice then
            M.respond(choice, buf)
          end
        end)
      else
        pcall(vim.cmd, "normal! za")
      end
    end
  end, "send (in the prompt area), answer a request, or toggle a fold")
  map("n", k.accept, function() M.respond("accept", buf) end, "accept the pending request")
  map("n", k.accept_for_session, function() M.respond("acceptForSession", buf) end,
    "accept the pending request for the whole session")
  map("n", k.decline, function() M.respond("decline", buf) end, "decline the pending request")
  map("n", k.cancel, function() require("codex_sessions.actions").cancel({ id = H.by_buf[buf].id }) end,
    "cancel the running turn")
  map("n", k.report, function() require("codex_sessions.actions").report({ id = H.by_buf[buf].id }) end,
    "show the report")
  map("n", k.list, function() require("codex_sessions.list").open(H.by_buf[buf].session.project.root) end,
    "open the session list")
  map("n", k.help, function() util.show_keys("session buffer", config.options.keys.session) end, "show keys")
end

local function new_buffer(session)
  local buf = vim.api.nvim_create_buf(true, true)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  local st = {
    buf = buf, id = session.id, session = session, last_seq = nil, loading = true, backlog = {},
    tail = nil, streamed = {}, complete = {}, request_marks = {}, deltas = 0,
  }
  H.by_buf[buf] = st
  H.by_id[session.id] = buf
  M.set_name(buf, session.bufferName)
  local k = config.options.keys.session
  local sep_text = string.format("──── prompt: write below, %s to send%s ────",
    k.send or ":CodexSessions send", k.help and (", " .. k.help .. " for keys") or "")
  set_lines(st, 0, -1, { "", sep_text, "" })
  st.sep = vim.api.nvim_buf_set_extmark(buf, ns, 1, 0, { end_col = #sep_text, hl_group = "CodexSessionsSeparator" })
  render_header(st)
  vim.bo[buf].filetype = "codex_sessions"
  map_keys(buf)
  vim.api.nvim_create_autocmd("BufWinEnter", {
    buffer = buf,
    callback = function()
      set_window_options(vim.api.nvim_get_current_win())
    end,
  })
  vim.api.nvim_create_autocmd({ "BufWipeout", "BufUnload" }, {
    buffer = buf,
    callback = function()
      H.by_buf[buf] = nil
      if H.by_id[st.id] == buf then
        H.by_id[st.id] = nil
      end
    end,
  })
  return st
end

--- Reset `st` to show another session (a new session that reuses a stopped one's name).
local function reassign(st, session)
  H.by_id[st.id] = nil
  st.id, st.session = session.id, session
  st.last_seq, st.loading, st.backlog, st.tail, st.streamed, st.complete = nil, true, {}, nil, {}, {}
  st.request_marks, st.deltas = {}, 0
  H.by_id[session.id] = st.buf
  local sep = sep_row(st)
  vim.api.nvim_buf_clear_namespace(st.buf, ns_req, 0, -1)
  vim.api.nvim_buf_clear_namespace(st.buf, ns, 1, sep)
  set_lines(st, 1, sep, {})
  render_header(st)
end

local function load_transcript(st, after)
  rpc.request("codex/session/transcript", { id = st.id, after = after, limit = 1000 }, function(err, result)
    if not valid(st.buf) then
      return
    end
    if err then
      st.loading = false
      rpc.notify_error(err)
      return
    end
    if result.truncated and not after then
      append(st, { { "… (older output dropped by the sidecar)", "CodexSessionsStatusLine" } })
    end
    for _, item in ipairs(result.items or {}) do
      show(st, item)
    end
    local nxt = result.next
    if nxt ~= nil and nxt ~= vim.NIL and #(result.items or {}) > 0 and #result.items >= 1000 then
      load_transcript(st, nxt)
      return
    end
    st.loading = false
    local backlog = st.backlog
    st.backlog = {}
    for _, item in ipairs(backlog) do
      -- a piece of a message that is complete by now is covered by the complete item
      if item.seq or not (item.itemId and st.complete[item.itemId]) then
        show(st, item)
      end
    end
  end)
end

--- The buffer of `session`, created and filled from the transcript if needed.
function M.ensure(session)
  local buf = M.buf_of(session.id)
  if buf then
    M.on_changed(session)
    return buf
  end
  -- a buffer that shows a session no longer live with the same name: take it over
  for b, st in pairs(H.by_buf) do
    if valid(b) and vim.fn.bufname(b) == session.bufferName then
      reassign(st, session)
      load_transcript(st, nil)
      return b
    end
  end
  local st = new_buffer(session)
  load_transcript(st, nil)
  return st.buf
end

--- Show `session`'s buffer: focus a window of this tab that shows it, or open one.
function M.open(session, how)
  local buf = M.ensure(session)
  util.show_buffer(buf, how or config.options.open)
  local st = H.by_buf[buf]
  -- cursor to the prompt area
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_buf(win) == buf then
    set_window_options(win)
    pcall(vim.api.nvim_win_set_cursor, win, { sep_row(st) + 2, 0 })
  end
  return buf
end

--- Is `id`'s buffer shown in a window of the current tab page?
function M.visible(id)
  local buf = M.buf_of(id)
  if not buf then
    return false
  end
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_buf(win) == buf then
      return true
    end
  end
  return false
end

--- The sidecar exited: say so in every session buffer.
function M.on_sidecar_exit()
  for buf, st in pairs(H.by_buf) do
    if valid(buf) then
      st.tail = nil
      append(st, { { string.format("! the sidecar exited; :CodexSessions resume %s brings this session back",
        st.session.name), "CodexSessionsError" } })
    end
  end
end

--- Every session buffer: { [buf] = id }.
function M.all()
  return util.live_buffers(H.by_buf, "id")
end

return M
