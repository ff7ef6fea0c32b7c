--- The session list of a project: name, status, elapsed, title or summary; in the
--- sidecar's order (waiting, failed, running, ... first); refreshed live.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local util = require("codex_sessions.util")

local M = {}

local ns = vim.api.nvim_create_namespace("codex_sessions_list")
local HEADER_LINES = 3

local H = {
  by_buf = {}, -- buf -> { root, project, sessions, rows }
  timer = nil,
  refresh_pending = false,
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
  return st.rows[row]
end

local function one_line(text)
  return (tostring(text):gsub("%s*\n%s*", " ⏎ "))
end

local function text_of(s)
  return one_line(M.describe(s))
end

--- What the list shows of a session beside its name, status and elapsed time.
function M.describe(s)
  local function present(v)
    return v ~= nil and v ~= vim.NIL and v ~= ""
  end
  if s.status == "waiting" and s.pending and s.pending[1] then
    local r = s.pending[1]
    local what = present(r.command) and r.command or (r.kind or "request")
    return "waits for approval: " .. what
  end
  if s.status == "failed" and present(s.error) then
    return "error: " .. s.error
  end
  if type(s.report) == "table" and present(s.report.summary) then
    return s.report.summary
  end
  if present(s.title) then
    return s.title
  end
  return ""
end

--- Elapsed: how long the current turn has run (active sessions) or the last one ran.
local function elapsed(s)
  local state = require("codex_sessions.state")
  local start = state.turn_start(s)
  local finish = state.active(s.status) and os.time() or util.parse_time(s.finishedAt)
  if not start or not finish or finish < start then
    return "-"
  end
  return util.format_duration(finish - start)
end

local function render(buf)
  local st = H.by_buf[buf]
  if not st then
    return
  end
  local k = config.options.keys.list
  local title = string.format("Codex sessions of %s  (%s)", st.project and st.project.name or "?", st.root)
  local hints = {}
  for _, action in ipairs({ "open", "new", "kill", "kill_all", "rename", "cancel", "report", "close", "help" }) do
    if k[action] then
      table.insert(hints, k[action] .. " " .. action:gsub("_", " "))
    end
  end
  local lines = { title, table.concat(hints, " · "), "" }
  local hl = { { 0, "CodexSessionsHeader" }, { 1, "CodexSessionsHint" } }
  st.rows = {}
  local sessions = st.sessions or {}
  if st.error then
    table.insert(lines, "(" .. st.error .. ")")
    table.insert(hl, { #lines - 1, "CodexSessionsError" })
  elseif #sessions == 0 then
    table.insert(lines, "(no sessions; " .. (k.new or ":CodexSessions start") .. " starts one)")
    table.insert(hl, { #lines - 1, "CodexSessionsStatusLine" })
  end
  local width = 4
  for _, s in ipairs(sessions) do
    width = math.max(width, #s.name)
  end
  local status_cols = {}
  for _, s in ipairs(sessions) do
    local line = string.format("%-" .. width .. "s  %-11s  %7s  %s", s.name, s.status, elapsed(s), text_of(s))
    table.insert(lines, line)
    st.rows[#lines] = s
    status_cols[#lines] = { width + 2, width + 2 + #s.status, "CodexSessionsStatus" .. s.status:gsub("^%l", string.upper) }
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  for _, h in ipairs(hl) do
    local text = lines[h[1] + 1]
    if #text > 0 then
      vim.api.nvim_buf_set_extmark(buf, ns, h[1], 0, { end_col = #text, hl_group = h[2] })
    end
  end
  for row, c in pairs(status_cols) do
    vim.api.nvim_buf_set_extmark(buf, ns, row - 1, c[1], { end_col = c[2], hl_group = c[3] })
  end
end

--- Ask the sidecar for the sessions of the list in `buf` and show them.
function M.refresh(buf, callback)
  local st = H.by_buf[buf]
  if not st then
    return
  end
  rpc.request("codex/session/list", { project = st.root }, function(err, result)
    if not valid(buf) then
      return
    end
    if err then
      st.error = rpc.error_message(err)
      rpc.notify_error(err)
    else
      st.error = nil
      st.sessions = result.sessions or {}
      local state = require("codex_sessions.state")
      for _, s in ipairs(st.sessions) do
        state.remember(s)
      end
    end
    render(buf)
    if callback then
      callback()
    end
  end)
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

--- Refresh every visible list soon (many changes in a row make one request).
function M.schedule_refresh()
  if H.refresh_pending then
    return
  end
  H.refresh_pending = true
  vim.defer_fn(function()
    H.refresh_pending = false
    if not rpc.is_running() then
      return
    end
    for _, buf in ipairs(visible_lists()) do
      M.refresh(buf)
    end
  end, 50)
end

local function ensure_timer()
  if H.timer then
    return
  end
  H.timer = vim.uv.new_timer()
  H.timer:start(1000, 1000, vim.schedule_wrap(function()
    local bufs = visible_lists()
    if #bufs == 0 then
      H.timer:stop()
      H.timer:close()
      H.timer = nil
      return
    end
    for _, buf in ipairs(bufs) do
      render(buf) -- elapsed times move on
    end
  end))
end

local function map_keys(buf)
  local k = config.options.keys.list
  local actions = require("codex_sessions.actions")
  local function map(lhs, fn, desc)
    if lhs then
      vim.keymap.set("n", lhs, fn, { buffer = buf, nowait = true, silent = true, desc = "codex-sessions: " .. desc })
    end
  end
  local function with_session(fn)
    return function()
      local s = M.session_at_cursor(buf)
      if not s then
        vim.notify("codex-sessions: no session on this line", vim.log.levels.WARN)
        return
      end
      fn(s)
    end
  end
  map(k.open, with_session(function(s) actions.open_session(s) end), "open the session")
  map(k.kill, with_session(function(s) actions.kill({ id = s.id }) end), "kill the session")
  map(k.kill_all, function() actions.kill_all(false, H.by_buf[buf].root) end, "kill every session of the project")
  map(k.rename, with_session(function(s)
    vim.ui.input({ prompt = "Rename " .. s.name .. " to: ", default = s.name }, function(new)
      if new and new ~= "" and new ~= s.name then
        actions.rename({ id = s.id }, new)
      end
    end)
  end), "rename the session")
  map(k.cancel, with_session(function(s) actions.cancel({ id = s.id }) end), "cancel the running turn")
  map(k.report, with_session(function(s) actions.report({ id = s.id }) end), "show the report")
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
  map(k.refresh, function() M.refresh(buf) end, "refresh")
  map(k.close, function()
    if #vim.api.nvim_tabpage_list_wins(0) > 1 then
      vim.api.nvim_win_close(0, false)
    else
      vim.cmd("bprevious")
    end
  end, "close the list")
  map(k.help, function() util.show_keys("session list", config.options.keys.list) end, "show keys")
end

local function new_list(project)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  H.by_buf[buf] = { root = project.root, project = project, sessions = {}, rows = {} }
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
      M.refresh(buf)
      ensure_timer()
    end,
  })
  return buf
end

--- Open the session list of the project that holds `path` (root resolved by the sidecar).
function M.open(path, callback)
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
    local win = util.show_buffer(buf, config.options.open)
    vim.wo[win].wrap = false
    vim.wo[win].cursorline = true
    M.refresh(buf, function()
      local first = HEADER_LINES + 1
      if vim.api.nvim_win_is_valid(win) and vim.api.nvim_win_get_buf(win) == buf
        and vim.api.nvim_win_get_cursor(win)[1] < first and vim.api.nvim_buf_line_count(buf) >= first then
        vim.api.nvim_win_set_cursor(win, { first, 0 })
      end
      if callback then
        callback(buf)
      end
    end)
    ensure_timer()
  end)
end

--- The sidecar exited: lists show that their rows are stale.
function M.on_sidecar_exit()
  for buf, st in pairs(H.by_buf) do
    if valid(buf) then
      st.error = "the sidecar exited; " .. (config.options.keys.list.refresh or ":CodexSessions")
        .. " starts it again"
      st.sessions = {}
      render(buf)
    end
  end
end

--- Every list buffer: { [buf] = root }.
function M.all()
  return util.live_buffers(H.by_buf, "root")
end

return M
