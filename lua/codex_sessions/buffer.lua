--- Session buffers: one scratch buffer per session, named by the sidecar's `bufferName`.
--- Layout: a header line, the transcript, a separator, and the prompt area below it.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local render = require("codex_sessions.render")
local util = require("codex_sessions.util")

local M = {}

local ns = vim.api.nvim_create_namespace("codex_sessions")
local ns_req = vim.api.nvim_create_namespace("codex_sessions_requests")
local ns_turn = vim.api.nvim_create_namespace("codex_sessions_turns")
local OUTPUT_PREFIX = render.OUTPUT_PREFIX

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

local function present(v)
  return v ~= nil and v ~= vim.NIL and v ~= ""
end

local function split_lines(text)
  return vim.split(text or "", "\n", { plain = true })
end

--- Run `fn`, our own change of the buffer: outside the undo history (so `u` in the
--- prompt area never undoes the transcript), and not taken for the user's edit of
--- the read-only part.
local repair

local function write(st, fn)
  local buf = st.buf
  if st.violated and not vim.api.nvim_get_mode().mode:match("^[iR]") then
    repair(st) -- before this write leaves the undo history unable to restore it
  end
  local undolevels = vim.bo[buf].undolevels
  vim.bo[buf].undolevels = -1
  st.writing = st.writing + 1
  local ok, err = pcall(fn)
  st.writing = st.writing - 1
  vim.bo[buf].undolevels = undolevels
  if st.sep then
    st.guard = sep_row(st) + 1
  end
  if not ok then
    error(err, 0)
  end
end

local function set_lines(st, first, last, lines)
  write(st, function()
    vim.api.nvim_buf_set_lines(st.buf, first, last, false, lines)
  end)
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
      st.guard = want + 1
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
  follow_windows(st, sep, function()
    write(st, function()
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
    end)
    hl_lines(st, first_new, sep_row(st) - first_new, group)
  end)
end

--- The header line (render.header), for the session object `s`.
function M.header_text(s)
  return render.header(s, require("codex_sessions.state").connected())
end

local function render_header(st)
  local text = M.header_text(st.session)
  set_lines(st, 0, 1, { text })
  vim.api.nvim_buf_clear_namespace(st.buf, ns, 0, 1)
  -- clearing removes every extmark on row 0 of ns; the separator is never on row 0
  vim.api.nvim_buf_set_extmark(st.buf, ns, 0, 0, { end_col = #text, hl_group = "CodexSessionsHeader" })
end

local catch_up

--- Render one transcript item or streamed piece into the buffer. A transcript item
--- that skips seq numbers means some were missed (a connection lost meanwhile): the
--- transcript is asked for what follows the last one shown.
local function show(st, item)
  local kind = item.kind
  if kind == "agentDelta" then
    if st.tail and st.tail.id == item.itemId and st.tail.kind == "agent" then
      extend_tail(st, item.text or "", "", "CodexSessionsAgent")
    else
      local rendered = render.prefixed(item.text or "", "", "", "CodexSessionsAgent")
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
      local rendered = render.command({ command = "…" }, "")
      append(st, rendered)
      st.tail = { id = item.itemId, kind = "command", nlines = #rendered, needs_line = true }
      extend_tail(st, item.text or "", OUTPUT_PREFIX, "CodexSessionsOutput")
    end
    st.deltas = st.deltas + 1
    return
  end
  -- a transcript item
  if item.seq then
    if item.seq <= st.last_seq then
      return
    end
    if item.seq > st.last_seq + 1 and not st.complete_page then
      if st.tail then -- streamed text after the missed items: shown again in its place
        st.streamed[st.tail.id] = nil
        replace_tail(st, {})
        st.tail = nil
      end
      catch_up(st, { item })
      return
    end
    if item.seq > st.last_seq + 1 then -- the transcript itself no longer holds them
      append(st, { { string.format("… (%d earlier items no longer kept)", item.seq - st.last_seq - 1),
        "CodexSessionsStatusLine" } })
    end
    st.last_seq = item.seq
  end
  local rendered = render.item(item)
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
  if item.seq then
    -- the turn this item belongs to, for "continue from here" (false: none)
    local row = (rendered[1][1] == "" and #rendered > 1) and first + 1 or first
    local mark = vim.api.nvim_buf_set_extmark(st.buf, ns_turn, row, 0, {})
    st.turn_marks[mark] = type(item.turn) == "number" and item.turn or false
  end
  if kind == "request" and not present(item.decision) then
    local mark = vim.api.nvim_buf_set_extmark(st.buf, ns_req, first, 0, {})
    st.request_marks[mark] = item.requestId
  end
end

--- Show what arrived while loading, in order; pieces of messages complete by now are
--- covered by their complete item.
local function drain_backlog(st)
  local backlog = st.backlog
  st.backlog = {}
  for _, item in ipairs(backlog) do
    if item.seq or not (item.itemId and st.complete[item.itemId]) then
      show(st, item)
    end
  end
end

--- Fetch the transcript after the last item shown (all of it for a new buffer), then
--- what arrived meanwhile. `pending` items are shown after, if still new.
local PAGE = 1000
local function load_transcript(st, pending)
  st.loading = true
  if pending then
    vim.list_extend(st.backlog, pending)
  end
  local id = st.id
  rpc.request("codex/session/transcript", { id = id, after = st.last_seq, limit = PAGE }, function(err, result)
    if not valid(st.buf) or st.id ~= id then
      return
    end
    if err then
      st.loading = false
      rpc.notify_error(err, "reading the transcript of " .. st.session.name)
      return
    end
    local items = result.items or {}
    st.complete_page = true -- a gap now is one the transcript cannot fill
    for _, item in ipairs(items) do
      show(st, item)
    end
    st.complete_page = false
    if #items >= PAGE then
      load_transcript(st, nil)
      return
    end
    st.loading = false
    -- a message still streaming: its text so far, in place of what this buffer has of it;
    -- pieces of it that came meanwhile are in that text (or follow it soon enough)
    for _, piece in ipairs(type(result.streaming) == "table" and result.streaming or {}) do
      if st.tail and st.tail.id == piece.itemId and st.tail.kind == "agent" then
        replace_tail(st, render.prefixed(piece.text or "", "", "", "CodexSessionsAgent"))
      else
        show(st, piece)
      end
      st.backlog = vim.tbl_filter(function(b)
        return b.seq or b.itemId ~= piece.itemId
      end, st.backlog)
    end
    drain_backlog(st)
  end)
end

catch_up = function(st, pending)
  if st.loading then
    vim.list_extend(st.backlog, pending or {})
    return
  end
  load_transcript(st, pending)
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
  for i, item in ipairs(items) do
    show(st, item)
    if st.loading then -- a gap: the rest waits for the transcript
      vim.list_extend(st.backlog, vim.list_slice(items, i + 1))
      return
    end
  end
end

--- After a new connection: every buffer fetches what it missed.
function M.catch_up_all()
  for buf, st in pairs(H.by_buf) do
    if valid(buf) then
      catch_up(st, nil)
    end
  end
end

--- A session object from the cache: header and buffer name follow it.
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

--- The connection ended: headers say so (sessions go on in the daemon).
function M.on_disconnected()
  for buf, st in pairs(H.by_buf) do
    if valid(buf) then
      render_header(st)
    end
  end
end

--- Give `buf` the name `name`. A buffer of another session that still holds the name
--- (its rename, e.g. to NAME~1 after `start!`, is on its way) steps aside; the
--- placeholder Neovim keeps for an old name is dropped.
function M.set_name(buf, name)
  local old = vim.fn.bufname(buf)
  if old == name then
    return
  end
  local old_full = vim.api.nvim_buf_get_name(buf)
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if b ~= buf and vim.fn.bufname(b) == name then
      if H.by_buf[b] then
        pcall(vim.api.nvim_buf_set_name, b, name .. " (renamed)")
      elseif not vim.api.nvim_buf_is_loaded(b) then
        pcall(vim.api.nvim_buf_delete, b, { force = true })
      end
    end
  end
  local ok, err = pcall(vim.api.nvim_buf_set_name, buf, name)
  if not ok then
    util.notify("codex-sessions: cannot name buffer " .. name .. ": " .. tostring(err), vim.log.levels.ERROR)
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

--- Add `text` to the end of the prompt area (context for the next prompt).
function M.add_to_prompt(buf, text)
  local st = M.state(buf)
  local lines = split_lines(text)
  local sep = sep_row(st)
  local existing = vim.api.nvim_buf_get_lines(st.buf, sep + 1, -1, false)
  if #existing == 1 and existing[1] == "" then
    set_lines(st, sep + 1, -1, lines)
  else
    set_lines(st, -1, -1, lines)
  end
end

--- Send what the prompt area holds (a session that is not running is resumed first;
--- while a turn runs, the `steer` option says whether it joins that turn).
function M.send_prompt(buf)
  local st = M.state(buf)
  if not st then
    return
  end
  local text = M.prompt_text(st.buf)
  if text == "" then
    util.notify("codex-sessions: the prompt area is empty; write below the separator line", vim.log.levels.WARN)
    return
  end
  require("codex_sessions.actions").send({ id = st.id }, text, function()
    if valid(st.buf) and M.prompt_text(st.buf) == text then
      M.clear_prompt(st.buf)
    end
  end)
end

--- The number of the turn at the cursor's line (nil in the prompt area: all of them),
--- or false and why when the line belongs to no turn.
function M.turn_at_cursor(buf)
  local st = M.state(buf)
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  if row > sep_row(st) then
    return nil
  end
  local marks = vim.api.nvim_buf_get_extmarks(st.buf, ns_turn, { row, 0 }, 0, { limit = 1 })
  local turn = marks[1] and st.turn_marks[marks[1][1]]
  if not turn then
    return false, "no turn here: move to a turn's text, or to the prompt area to continue from the last"
  end
  return turn
end

--- "Continue from here": a new session (its name asked) continuing this conversation
--- from the turn at the cursor (in the prompt area: from the last turn).
function M.fork_here(buf)
  local st = M.state(buf)
  if not st then
    util.notify("codex-sessions: not a session buffer", vim.log.levels.ERROR)
    return
  end
  local turn, why = M.turn_at_cursor(st.buf)
  if turn == false then
    util.notify("codex-sessions: " .. why, vim.log.levels.ERROR)
    return
  end
  require("codex_sessions.actions").fork_ask(st.session, turn)
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
  if vim.api.nvim_get_current_buf() == st.buf then
    local row = vim.api.nvim_win_get_cursor(0)[1] - 1
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
    util.notify("codex-sessions: not a session buffer", vim.log.levels.ERROR)
    return
  end
  local rid = M.request_at_cursor(st.buf)
  if not rid then
    util.notify("codex-sessions: session " .. st.session.name .. " has no pending request", vim.log.levels.WARN)
    return
  end
  require("codex_sessions.actions").respond({ id = st.id }, rid, decision)
end

-- ---------------------------------------------------------------------------------------
-- The read-only transcript: only the prompt area below the separator takes edits. The
-- buffer stays 'modifiable' (so typeahead that moves into the prompt area and edits
-- there always works); an edit that reaches above the prompt area is undone at once.

--- Is the header, transcript and separator as we wrote them?
local function intact(st)
  local row = sep_row(st)
  return row + 1 == st.guard and (vim.api.nvim_buf_get_lines(st.buf, row, row + 1, false)[1] or "") == st.sep_text
end

--- Start the buffer afresh from the transcript (when an edit could not be undone).
local reset


--- Undo an edit that reached above the prompt area: back to the last state that was
--- good (our last write, or the user's last edit of the prompt area).
repair = function(st)
  if not valid(st.buf) or not st.violated then
    return
  end
  st.violated = false
  st.writing = st.writing + 1
  local ok = pcall(vim.api.nvim_buf_call, st.buf, function()
    vim.cmd("silent undo " .. st.good_seq)
  end)
  st.writing = st.writing - 1
  if not ok or vim.fn.undotree(st.buf).seq_cur ~= st.good_seq or not intact(st) then
    reset(st)
  end
  util.notify("codex-sessions: the transcript is read-only; write below the ──── prompt line", vim.log.levels.WARN)
end

local function guard(st)
  local buf = st.buf
  vim.api.nvim_buf_attach(buf, false, {
    on_lines = function(_, _, _, first)
      if not H.by_buf[buf] then
        return true
      end
      if st.writing == 0 and first < st.guard then
        st.violated = true
      end
    end,
  })
  local group = vim.api.nvim_create_augroup("codex_sessions_buffer_" .. buf, { clear = true })
  vim.api.nvim_create_autocmd("TextChanged", {
    group = group, buffer = buf,
    callback = function()
      if st.violated then
        repair(st)
      else
        st.good_seq = vim.fn.undotree(buf).seq_cur
      end
    end,
  })
  vim.api.nvim_create_autocmd("TextChangedI", {
    group = group, buffer = buf,
    callback = function()
      if st.violated then
        vim.cmd("stopinsert")
      else
        st.good_seq = vim.fn.undotree(buf).seq_cur
      end
    end,
  })
  vim.api.nvim_create_autocmd("InsertLeave", {
    group = group, buffer = buf,
    callback = function()
      if st.violated then
        vim.schedule(function() repair(st) end)
      end
    end,
  })
  -- joining the first prompt line to the separator is the one edit Insert mode makes there
  local function at_prompt_start()
    local cursor = vim.api.nvim_win_get_cursor(0)
    return cursor[1] - 1 == sep_row(st) + 1 and cursor[2] == 0
  end
  for _, key in ipairs({ "<BS>", "<C-h>", "<C-w>", "<C-u>" }) do
    vim.keymap.set("i", key, function()
      return at_prompt_start() and "" or vim.keycode(key)
    end, { buffer = buf, expr = true, replace_keycodes = false, desc = "codex-sessions: not into the transcript" })
  end
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
M.set_window_options = set_window_options

--- Fold level of line `lnum`: command output is folded.
function M.foldexpr(lnum)
  local line = vim.fn.getline(lnum)
  return vim.startswith(line, OUTPUT_PREFIX) and 1 or 0
end

local function map_keys(buf)
  local k = config.options.keys.session
  local function map(modes, lhs, fn, desc)
    util.map(buf, modes, lhs, fn, desc)
  end
  local function id()
    return H.by_buf[buf].id
  end
  map({ "n", "i" }, k.send, function() M.send_prompt(buf) end, "send the prompt area")
  map("n", k.send_normal, function()
    local st = M.state(buf)
    local row = vim.api.nvim_win_get_cursor(0)[1] - 1
    if row > sep_row(st) then
      M.send_prompt(buf)
      return
    end
    local marks = vim.api.nvim_buf_get_extmarks(buf, ns_req, { row, 0 }, { row, 0 }, {})
    local rid = #marks > 0 and st.request_marks[marks[1][1]]
    local waiting = false
    for _, r in ipairs(st.session.pending or {}) do
      if r.requestId == rid and require("codex_sessions.review").is_review(r) then
        require("codex_sessions.review").open(st.session, r)
        return
      end
      waiting = waiting or r.requestId == rid
    end
    if rid and waiting then
      vim.ui.select({ "accept", "acceptForSession", "decline", "cancel" }, { prompt = "Answer " .. rid }, function(choice)
        if choice then
          require("codex_sessions.actions").respond({ id = st.id }, rid, choice)
        end
      end)
    else
      pcall(vim.cmd, "normal! za")
    end
  end, "send (in the prompt area), answer (or review) the request on the line, or toggle a fold")
  map("n", k.accept, function() M.respond("accept", buf) end, "accept the pending request")
  map("n", k.accept_for_session, function() M.respond("acceptForSession", buf) end,
    "accept the pending request for the whole session")
  map("n", k.decline, function() M.respond("decline", buf) end, "decline the pending request")
  map("n", k.cancel, function() require("codex_sessions.actions").cancel({ id = id() }) end, "cancel the running turn")
  map("n", k.report, function() require("codex_sessions.actions").report({ id = id() }) end, "show the report")
  map("n", k.fork, function() M.fork_here(buf) end, "continue from here: a new session from the turn at the cursor")
  map("n", k.diff, function() require("codex_sessions.worktree").diff({ id = id() }) end,
    "show what the session changed")
  map("n", k.tui, function() require("codex_sessions.actions").tui({ id = id() }) end,
    "open Codex's own terminal UI on this session")
  map("n", k.list, function() require("codex_sessions.list").open(H.by_buf[buf].session.project.root) end,
    "open the session list")
  map("n", k.help, function() util.show_keys("session buffer", config.options.keys.session) end, "show keys")
end

local function separator_text()
  local k = config.options.keys.session
  return string.format("──── prompt: write below, %s to send%s ────",
    k.send and util.key_label(k.send) or ":CodexSessions send",
    k.help and (", " .. util.key_label(k.help) .. " for keys") or "")
end

--- Empty the buffer to a header, a separator and an empty prompt area.
local function layout(st)
  st.sep = nil
  vim.api.nvim_buf_clear_namespace(st.buf, ns, 0, -1)
  vim.api.nvim_buf_clear_namespace(st.buf, ns_req, 0, -1)
  vim.api.nvim_buf_clear_namespace(st.buf, ns_turn, 0, -1)
  st.turn_marks = {}
  set_lines(st, 0, -1, { "", st.sep_text, "" })
  st.sep = vim.api.nvim_buf_set_extmark(st.buf, ns, 1, 0, { end_col = #st.sep_text, hl_group = "CodexSessionsSeparator" })
  st.guard = 2
  render_header(st)
end

reset = function(st)
  st.last_seq, st.tail, st.streamed, st.complete, st.request_marks = 0, nil, {}, {}, {}
  st.backlog, st.loading = {}, false
  layout(st)
  catch_up(st, nil)
end

local function new_buffer(session)
  local buf = vim.api.nvim_create_buf(true, true)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  local st = {
    buf = buf, id = session.id, session = session, last_seq = 0, loading = false, backlog = {},
    tail = nil, streamed = {}, complete = {}, request_marks = {}, turn_marks = {}, deltas = 0, writing = 0, guard = 0,
    violated = false, good_seq = 0, sep_text = separator_text(),
  }
  H.by_buf[buf] = st
  H.by_id[session.id] = buf
  M.set_name(buf, session.bufferName)
  layout(st)
  vim.bo[buf].filetype = "codex_sessions"
  map_keys(buf)
  guard(st)
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

--- The buffer of `session`, created and filled from the transcript if needed.
function M.ensure(session)
  local buf = M.buf_of(session.id)
  if buf then
    M.on_changed(session)
    return buf
  end
  local st = new_buffer(session)
  load_transcript(st, nil)
  return st.buf
end

--- Show `session`'s buffer in the session window (one per tab page, reused), the
--- cursor in the prompt area.
function M.open(session)
  local buf = M.ensure(session)
  local win = util.show_session(buf)
  set_window_options(win)
  local st = H.by_buf[buf]
  pcall(vim.api.nvim_win_set_cursor, win, { vim.api.nvim_buf_line_count(buf), 0 })
  return buf
end

--- The session `id` is gone for good (forgotten): its buffer goes, its windows stay.
function M.forget(id)
  local buf = M.buf_of(id)
  if not buf then
    return
  end
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    vim.api.nvim_win_call(win, function()
      local alt = vim.fn.bufnr("#")
      if alt > 0 and alt ~= buf and vim.api.nvim_buf_is_loaded(alt) then
        vim.api.nvim_win_set_buf(win, alt)
      else
        vim.cmd("enew")
      end
    end)
  end
  pcall(vim.api.nvim_buf_delete, buf, { force = true })
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

return M
