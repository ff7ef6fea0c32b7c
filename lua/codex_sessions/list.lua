--- The session list of a project, a panel (a split at one side, or a float) toggled by
--- :CodexSessions list. Rows come from the cache the notifications keep (no request per
--- change), in the daemon's order (`rank`, then most recent), with the daemon's
--- `headline` beside each name.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local util = require("codex_sessions.util")

local M = {}

local ns = vim.api.nvim_create_namespace("codex_sessions_list")
local HEADER_LINES = 3

local H = {
  by_buf = {}, -- buf -> { root, project, rows, stopped }
  timer = nil,
  render_pending = false,
}

local function valid(buf)
  return buf and vim.api.nvim_buf_is_valid(buf)
end

--- The project root a list buffer shows, if `buf` is one.
function M.root_of(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local st = H.by_buf[buf]
  return st and st.root
end

--- The session on the cursor line of the list in `buf`.
function M.session_at_cursor(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local st = H.by_buf[buf]
  if not st then
    return nil
  end
  local row = vim.api.nvim_win_get_cursor(0)[1]
  local s = st.rows[row]
  return s and (require("codex_sessions.state").get(s.id) or s)
end

local function hints(k)
  local out = {}
  for _, action in ipairs({ "open", "accept", "decline", "new", "kill", "kill_all", "rename", "cancel", "report",
    "diff", "merge", "stopped", "close", "help" }) do
    if k[action] then
      table.insert(out, k[action] .. " " .. action:gsub("_", " "))
    end
  end
  return table.concat(out, " · ")
end

local function render(buf)
  local st = H.by_buf[buf]
  if not st then
    return
  end
  local state = require("codex_sessions.state")
  local text = require("codex_sessions.render")
  local k = config.options.keys.list
  local limits = text.limits(state.limits())
  local title = string.format("Codex sessions of %s  (%s)%s%s", st.project and st.project.name or "?", st.root,
    st.stopped and "  [with stopped]" or "", limits ~= "" and ("  " .. limits) or "")
  local sessions = state.of_project(st.root, st.stopped)
  local rows, head, status_cols = text.list_rows(sessions, state.numbers(st.root))
  local lines = { title, hints(k), #sessions > 0 and head or "" }
  local hl = { { 0, "CodexSessionsHeader" }, { 1, "CodexSessionsHint" }, { 2, "CodexSessionsHint" } }
  st.rows = {}
  if not state.connected() then
    table.insert(lines, "(not connected: as last heard; " .. (k.refresh or ":CodexSessions list") .. " reconnects)")
    table.insert(hl, { #lines - 1, "CodexSessionsError" })
  end
  if #sessions == 0 then
    table.insert(lines, "(no sessions; " .. (k.new or ":CodexSessions start") .. " starts one)")
    table.insert(hl, { #lines - 1, "CodexSessionsStatusLine" })
  end
  local marks = {}
  for i, s in ipairs(sessions) do
    table.insert(lines, rows[i])
    st.rows[#lines] = s
    local c = status_cols[i]
    marks[#lines] = { c[1], c[2], "CodexSessionsStatus" .. s.status:gsub("^%l", string.upper) }
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  for _, h in ipairs(hl) do
    local line = lines[h[1] + 1]
    if #line > 0 then
      vim.api.nvim_buf_set_extmark(buf, ns, h[1], 0, { end_col = #line, hl_group = h[2] })
    end
  end
  for row, c in pairs(marks) do
    vim.api.nvim_buf_set_extmark(buf, ns, row - 1, c[1], { end_col = c[2], hl_group = c[3] })
    local s = st.rows[row]
    if type(s.overlaps) == "table" and #s.overlaps > 0 then
      local bang = lines[row]:find("!", #tostring(s.name) + 3, true)
      if bang then
        vim.api.nvim_buf_set_extmark(buf, ns, row - 1, bang - 1, { end_col = bang, hl_group = "CodexSessionsOverlap" })
      end
    end
  end
end

local function visible_lists()
  local out = {}
  for buf in pairs(H.by_buf) do
    if valid(buf) and #vim.fn.win_findbuf(buf) > 0 then
      table.insert(out, buf)
    end
  end
  return out
end

--- The cache changed: render the visible lists (once for many changes in a row).
function M.on_changed()
  if H.render_pending then
    return
  end
  H.render_pending = true
  vim.schedule(function()
    H.render_pending = false
    for _, buf in ipairs(visible_lists()) do
      render(buf)
    end
  end)
end

local function ensure_timer()
  if H.timer then
    return
  end
  H.timer = vim.uv.new_timer()
  H.timer:start(1000, 1000, vim.schedule_wrap(function()
    local bufs = visible_lists()
    if #bufs == 0 then
      if H.timer then
        H.timer:stop()
        H.timer:close()
        H.timer = nil
      end
      return
    end
    local state = require("codex_sessions.state")
    for _, buf in ipairs(bufs) do
      for _, s in ipairs(state.of_project(H.by_buf[buf].root, false)) do
        if state.active(s.status) then
          render(buf) -- its elapsed time moves on
          break
        end
      end
    end
  end))
end

--- The window of this tab page that shows a list, if any.
local function panel()
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if H.by_buf[vim.api.nvim_win_get_buf(win)] then
      return win
    end
  end
end

--- Close the list panel of this tab page.
function M.close()
  local win = panel()
  if not win then
    return
  end
  if #vim.api.nvim_tabpage_list_wins(0) > 1 then
    vim.api.nvim_win_close(win, false)
  else
    vim.cmd("enew")
  end
end

local function set_window_options(win)
  local function set(name, value)
    vim.api.nvim_set_option_value(name, value, { scope = "local", win = win })
  end
  set("wrap", false)
  set("cursorline", true)
  set("number", false)
  set("relativenumber", false)
  set("signcolumn", "no")
  set("foldcolumn", "0")
  set("spell", false)
  set("list", false)
end

--- Show list buffer `buf` in the panel: reuse the panel window of this tab, else open
--- one as `list_layout` says. Returns the window.
local function show(buf)
  local win = panel()
  if win then
    vim.api.nvim_set_current_win(win)
    vim.api.nvim_win_set_buf(win, buf)
    return win
  end
  local layout = config.options.list_layout
  if layout == "float" then
    local height = math.min(math.max(vim.api.nvim_buf_line_count(buf) + 1, 6), math.floor(vim.o.lines * 0.6))
    win = util.float(buf, { width = math.floor(vim.o.columns * 0.8), height = height, title = "Codex sessions" })
  else
    local rows = #(H.by_buf[buf].rows and vim.tbl_keys(H.by_buf[buf].rows) or {})
    local cmd = ({
      bottom = "botright " .. math.min(math.max(rows + HEADER_LINES + 2, 8), 15) .. "split",
      top = "topleft " .. math.min(math.max(rows + HEADER_LINES + 2, 8), 15) .. "split",
      left = "topleft " .. math.min(60, math.floor(vim.o.columns / 3)) .. "vsplit",
      right = "botright " .. math.min(60, math.floor(vim.o.columns / 3)) .. "vsplit",
    })[layout]
    vim.cmd(cmd)
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
  end
  set_window_options(win)
  return win
end

local function map_keys(buf)
  local k = config.options.keys.list
  local actions = require("codex_sessions.actions")
  local function map(lhs, fn, desc)
    util.map(buf, "n", lhs, fn, desc)
  end
  local function with_session(fn)
    return function()
      local s = M.session_at_cursor(buf)
      if not s then
        util.notify("codex-sessions: no session on this line", vim.log.levels.WARN)
        return
      end
      fn(s)
    end
  end
  local function answer(decision)
    return with_session(function(s)
      local first = type(s.pending) == "table" and s.pending[1]
      if not first then
        util.notify("codex-sessions: " .. s.name .. " waits for nothing", vim.log.levels.WARN)
        return
      end
      actions.respond({ id = s.id }, first.requestId, decision)
    end)
  end
  map(k.open, with_session(function(s)
    actions.open_session(s)
    local review = require("codex_sessions.review")
    if review.pending_of(s) then
      review.open(s, review.pending_of(s))
    end
  end), "open the session (and the prompt it waits to have reviewed)")
  map(k.accept, answer("accept"), "accept what the session waits for")
  map(k.accept_for_session, answer("acceptForSession"), "accept it for the whole session")
  map(k.decline, answer("decline"), "decline what the session waits for")
  map(k.kill, with_session(function(s)
    if util.confirm(string.format("Kill session %s (%s)? Its history is kept.", s.name, s.status)) then
      actions.kill({ id = s.id })
    end
  end), "kill the session")
  map(k.kill_all, function() actions.kill_all(false, H.by_buf[buf].root) end, "kill every session of the project")
  map(k.forget, with_session(function(s) actions.forget({ id = s.id }, s) end), "forget the session for good")
  map(k.rename, with_session(function(s)
    vim.ui.input({ prompt = "Rename " .. s.name .. " to: ", default = s.name }, function(new)
      if new and new ~= "" and new ~= s.name then
        actions.rename({ id = s.id }, new)
      end
    end)
  end), "rename the session")
  map(k.cancel, with_session(function(s) actions.cancel({ id = s.id }) end), "cancel the running turn")
  map(k.report, with_session(function(s) actions.report({ id = s.id }) end), "show the report")
  local worktree = require("codex_sessions.worktree")
  map(k.diff, with_session(function(s) worktree.diff({ id = s.id }) end), "show what the session changed")
  map(k.merge, with_session(function(s) worktree.merge({ id = s.id }) end),
    "merge its work tree into the project's (staged)")
  map(k.discard, with_session(function(s) worktree.discard({ id = s.id }, s) end),
    "discard its work tree and branch")
  map(k.fork, with_session(function(s) actions.fork_ask(s) end), "continue it in a new session")
  map(k.tui, with_session(function(s) actions.tui({ id = s.id }) end), "open Codex's own terminal UI on it")
  map(k.new, function()
    local root = H.by_buf[buf].root
    vim.ui.input({ prompt = "New session name: " }, function(name)
      if not name or name == "" then
        return
      end
      vim.ui.input({ prompt = "First prompt (empty: none): " }, function(prompt)
        actions.start(name, prompt ~= "" and prompt or nil, root)
      end)
    end)
  end, "start a new session")
  map(k.stopped, function()
    H.by_buf[buf].stopped = not H.by_buf[buf].stopped
    render(buf)
  end, "show or hide stopped sessions")
  map(k.refresh, function()
    require("codex_sessions.state").sync()
    require("codex_sessions.state").fetch_limits(true)
  end, "ask the daemon for every session again")
  map(k.close, M.close, "close the list")
  map(k.help, function() util.show_keys("session list", config.options.keys.list) end, "show keys")
end

local function new_list(project)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  H.by_buf[buf] = { root = project.root, project = project, rows = {}, stopped = false }
  pcall(vim.api.nvim_buf_set_name, buf, "codex-sessions://" .. project.root)
  vim.bo[buf].filetype = "codex_sessions_list"
  map_keys(buf)
  vim.api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    callback = function() H.by_buf[buf] = nil end,
  })
  vim.api.nvim_create_autocmd("BufWinEnter", {
    buffer = buf,
    callback = function()
      render(buf)
      ensure_timer()
    end,
  })
  return buf
end

--- Open the list of the project that holds `path` (root resolved by the daemon) in the
--- panel, or close the panel when it is the current window (a toggle).
function M.open(path, callback)
  if H.by_buf[vim.api.nvim_get_current_buf()] and not path then
    M.close()
    return
  end
  path = path or util.project_path()
  rpc.request("codex/project/resolve", { project = path }, function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    local project = result.project
    local buf
    for b, st in pairs(H.by_buf) do
      if valid(b) and st.root == project.root then
        buf = b
      end
    end
    buf = buf or new_list(project)
    render(buf)
    local win = show(buf)
    local first = HEADER_LINES + 1
    if vim.api.nvim_win_get_cursor(win)[1] < first and vim.api.nvim_buf_line_count(buf) >= first then
      pcall(vim.api.nvim_win_set_cursor, win, { first, 0 })
    end
    ensure_timer()
    require("codex_sessions.state").fetch_limits()
    if callback then
      callback(buf)
    end
  end)
end

return M
