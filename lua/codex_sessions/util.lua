--- Small helpers shared by the modules: windows, time, keys, questions.
local M = {}

local function is_float(win)
  return vim.api.nvim_win_get_config(win).relative ~= ""
end
M.is_float = is_float

--- A buffer the session window shows: a session's own buffer, or one of its views
--- (its diff, the commit message of its merge).
local function is_session(buf)
  return require("codex_sessions.buffer").state(buf) ~= nil or vim.b[buf].codex_sessions_view == true
end

local function is_list(buf)
  return require("codex_sessions.list").root_of(buf) ~= nil
end

--- A window of this tab page to open things from: the current one unless it is a float
--- or the list panel, else the previous one, else the first ordinary window.
local function ordinary_window()
  local function ok(win)
    return win ~= 0 and vim.api.nvim_win_is_valid(win) and not is_float(win)
      and vim.api.nvim_win_get_tabpage(win) == vim.api.nvim_get_current_tabpage()
      and not is_list(vim.api.nvim_win_get_buf(win))
  end
  local cur = vim.api.nvim_get_current_win()
  if ok(cur) then
    return cur
  end
  local prev = vim.fn.win_getid(vim.fn.winnr("#"))
  if ok(prev) then
    return prev
  end
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if ok(win) then
      return win
    end
  end
end

--- The session window of the current tab page: the one showing a session buffer.
function M.session_window()
  local cur = vim.api.nvim_get_current_win()
  if not is_float(cur) and is_session(vim.api.nvim_win_get_buf(cur)) then
    return cur
  end
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if not is_float(win) and is_session(vim.api.nvim_win_get_buf(win)) then
      return win
    end
  end
end

--- Show session buffer `buf` and focus it: in the window of this tab that shows it, else
--- in the session window (reused: sessions never pile up windows), else in a new one
--- opened as the `open` option says. Returns the window.
function M.show_session(buf)
  local how = require("codex_sessions.config").options.open
  if is_float(vim.api.nvim_get_current_win()) then
    pcall(vim.api.nvim_win_close, 0, false) -- the list or a report as a float
  end
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_buf(win) == buf and not is_float(win) then
      vim.api.nvim_set_current_win(win)
      return win
    end
  end
  local win = M.session_window()
  if not win and how == "tab" then
    for _, tab in ipairs(vim.api.nvim_list_tabpages()) do
      for _, w in ipairs(vim.api.nvim_tabpage_list_wins(tab)) do
        if not is_float(w) and is_session(vim.api.nvim_win_get_buf(w)) then
          win = w
        end
      end
    end
  end
  if not win then
    local from = ordinary_window()
    if from then
      vim.api.nvim_set_current_win(from)
    end
    if how == "vsplit" then
      vim.cmd("vsplit")
    elseif how == "tab" then
      vim.cmd("tab split")
    elseif how == "split" or not from then
      vim.cmd("split")
    end
    win = vim.api.nvim_get_current_win()
  end
  vim.api.nvim_set_current_win(win)
  vim.api.nvim_win_set_buf(win, buf)
  return win
end

--- Edit the file `path` and focus it: in the current window, unless that is a float, the
--- list or a session's window; then in the previous window, or another of this tab page,
--- that is none of those; else in a window of its own above. Returns the window and the
--- buffer.
function M.show_file(path)
  if is_float(vim.api.nvim_get_current_win()) then
    pcall(vim.api.nvim_win_close, 0, false)
  end
  local function ok(win)
    return win ~= 0 and vim.api.nvim_win_is_valid(win) and not is_float(win)
      and vim.api.nvim_win_get_tabpage(win) == vim.api.nvim_get_current_tabpage()
      and not is_list(vim.api.nvim_win_get_buf(win)) and not is_session(vim.api.nvim_win_get_buf(win))
  end
  local candidates = { vim.api.nvim_get_current_win(), vim.fn.win_getid(vim.fn.winnr("#")) }
  vim.list_extend(candidates, vim.api.nvim_tabpage_list_wins(0))
  local target
  for _, win in ipairs(candidates) do
    if ok(win) then
      target = win
      break
    end
  end
  if target then
    vim.api.nvim_set_current_win(target)
  else
    local from = ordinary_window()
    if from then
      vim.api.nvim_set_current_win(from)
    end
    vim.cmd("aboveleft split")
  end
  vim.cmd("edit " .. vim.fn.fnameescape(path))
  return vim.api.nvim_get_current_win(), vim.api.nvim_get_current_buf()
end

--- Stop showing `buf`: each window showing it goes to its alternate buffer, or closes
--- (a new empty buffer when it is the last window).
function M.leave(buf)
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    vim.api.nvim_win_call(win, function()
      local alt = vim.fn.bufnr("#")
      if alt > 0 and alt ~= buf and vim.api.nvim_buf_is_loaded(alt) then
        vim.api.nvim_win_set_buf(win, alt)
      elseif #vim.api.nvim_tabpage_list_wins(0) > 1 then
        vim.api.nvim_win_close(win, true)
      else
        vim.cmd("enew")
      end
    end)
  end
end

--- A float in the middle of the editor showing `buf`, focused; `q` and <Esc> close it,
--- and so does leaving it.
function M.float(buf, opts)
  local width = math.min(opts.width or 80, vim.o.columns - 4)
  local height = math.min(opts.height or 20, vim.o.lines - 6)
  local win = vim.api.nvim_open_win(buf, true, {
    relative = "editor", style = "minimal", border = "rounded",
    width = math.max(width, 20), height = math.max(height, 1),
    row = math.floor((vim.o.lines - height) / 2) - 1, col = math.floor((vim.o.columns - width) / 2),
    title = opts.title and (" " .. opts.title .. " ") or nil, title_pos = opts.title and "center" or nil,
  })
  local function close()
    if vim.api.nvim_win_is_valid(win) then
      pcall(vim.api.nvim_win_close, win, false)
    end
  end
  for _, key in ipairs({ "q", "<Esc>" }) do
    vim.keymap.set("n", key, close, { buffer = buf, nowait = true, desc = "codex-sessions: close" })
  end
  vim.api.nvim_create_autocmd("WinLeave", {
    buffer = buf,
    once = true,
    callback = function()
      vim.schedule(close)
    end,
  })
  return win
end

--- `text` cut to one line that fits the command line (so no "Press ENTER").
function M.one_line(text)
  text = tostring(text or ""):gsub("%s*\n%s*", " ")
  local room = math.max(vim.v.echospace or 80, 40)
  if vim.fn.strdisplaywidth(text) > room then
    text = vim.fn.strcharpart(text, 0, room - 1) .. "…"
  end
  return text
end

local queued = {} -- notices of this tick, shown together

local function builtin_notify()
  local info = debug.getinfo(vim.notify, "S")
  return info and info.source == "@vim/_editor.lua"
end

local function flush_notices()
  local notes = queued
  queued = {}
  if #notes == 0 then
    return
  end
  local top = notes[1]
  for _, n in ipairs(notes) do
    if n.level > top.level then
      top = n
    end
  end
  local msg = top.msg
  if #notes > 1 then
    msg = msg .. string.format(" (+%d more)", #notes - 1)
  end
  if vim.api.nvim_get_mode().mode:match("^[iR]") and vim.o.showmode then
    -- In Insert mode the mode message ("-- INSERT --") is drawn again at every screen
    -- update and wipes the notice; the notice takes its place until Insert mode ends.
    vim.o.showmode = false
    vim.api.nvim_create_autocmd("InsertLeave", {
      once = true,
      callback = function()
        vim.o.showmode = true
      end,
    })
  end
  vim.notify(msg, top.level)
end

--- A one-line notice through vim.notify. With Neovim's own vim.notify (which echoes),
--- notices of one moment are shown as one line (two would ask "Press ENTER"), and they
--- show in Insert mode too. A notification plugin gets each as it comes.
function M.notify(msg, level)
  level = level or vim.log.levels.INFO
  if not builtin_notify() then
    vim.notify(msg, level)
    return
  end
  table.insert(queued, { msg = msg, level = level })
  if #queued == 1 then
    vim.schedule(flush_notices)
  end
end

--- Ask a yes/no question; true for yes.
function M.confirm(question)
  return vim.fn.confirm(question, "&Yes\n&No", 2) == 1
end

--- A key as the user types it: "<localleader>a" shows as "\a".
function M.key_label(lhs)
  local leader = vim.g.maplocalleader
  if type(leader) ~= "string" or leader == "" then
    leader = "\\"
  end
  if leader == " " then
    leader = "<Space>"
  end
  return (lhs:gsub("<[Ll]ocal[Ll]eader>", function() return leader end))
end

--- Seconds since the epoch of an ISO 8601 UTC time such as 2026-01-02T03:04:05.678Z.
function M.parse_time(iso)
  if type(iso) ~= "string" then
    return nil
  end
  local y, mo, d, h, mi, s = iso:match("^(%d+)%-(%d+)%-(%d+)[T ](%d+):(%d+):(%d+)")
  if not y then
    return nil
  end
  local offset = 0
  local sign, oh, om = iso:match("([%+%-])(%d%d):?(%d%d)$")
  if sign then
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
  end
  -- os.time reads the table as local time; correct by the local offset from UTC
  local t = os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = s, isdst = false })
  local utc_as_local = os.time(os.date("!*t", t))
  return t + (t - utc_as_local) - offset
end

--- "4s", "3m05s", "2h10m", "3d".
function M.format_duration(seconds)
  if not seconds or seconds < 0 then
    return "-"
  end
  seconds = math.floor(seconds)
  if seconds < 60 then
    return seconds .. "s"
  elseif seconds < 3600 then
    return string.format("%dm%02ds", math.floor(seconds / 60), seconds % 60)
  elseif seconds < 86400 then
    return string.format("%dh%02dm", math.floor(seconds / 3600), math.floor(seconds % 3600 / 60))
  end
  return math.floor(seconds / 86400) .. "d"
end

--- How long the session's current turn has run, or its last one ran, from the daemon's
--- `turnStartedAt` (and `finishedAt` once it ended); "-" before any turn.
function M.elapsed(s)
  local start = M.parse_time(s.turnStartedAt)
  if not start then
    return "-"
  end
  local finish
  local ended = M.parse_time(s.finishedAt)
  if require("codex_sessions.state").active(s.status) then
    if ended and ended >= start then
      return "-" -- queued, or a prompt under review: no turn runs yet
    end
    finish = os.time()
  else
    finish = ended
  end
  if not finish or finish < start then
    return "-"
  end
  return M.format_duration(finish - start)
end

--- Map LHS (when the user has not turned that key off) to FN in BUF only.
function M.map(buf, modes, lhs, fn, desc)
  if lhs then
    vim.keymap.set(modes, lhs, fn, { buffer = buf, nowait = true, silent = true, desc = "codex-sessions: " .. desc })
  end
end

--- Show a table of action -> key in a float.
function M.show_keys(where, keys)
  local lines = {}
  local actions = vim.tbl_keys(keys)
  table.sort(actions)
  for _, action in ipairs(actions) do
    if keys[action] then
      table.insert(lines, string.format(" %-10s %s", M.key_label(keys[action]), (action:gsub("_", " "))))
    end
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = "wipe"
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  local title = "codex-sessions keys in the " .. where
  M.float(buf, { width = math.max(44, #title + 4), height = #lines, title = title })
end

--- The directory a command acts on: a session or list buffer's project, the current
--- file's folder, or the working directory. The sidecar resolves the project root.
function M.project_path()
  local session = require("codex_sessions.buffer").session_of(0)
  if session and session.project then
    return session.project.root
  end
  local root = require("codex_sessions.list").root_of(0)
  if root then
    return root
  end
  local project = vim.b.codex_sessions_project -- a project's learnings.md
  if type(project) == "string" then
    return project
  end
  local id = vim.b.codex_sessions_id -- a session's diff or commit message
  local viewed = type(id) == "string" and require("codex_sessions.state").get(id)
  if viewed and viewed.project then
    return viewed.project.root
  end
  local name = vim.api.nvim_buf_get_name(0)
  local path = vim.fn.getcwd()
  if name ~= "" and vim.bo.buftype == "" and vim.fn.filereadable(name) == 1 then
    path = vim.fn.fnamemodify(name, ":p:h")
  end
  -- a file of a session's own work tree belongs to the session's project
  local real = vim.uv.fs_realpath(path) or path
  for _, s in ipairs(require("codex_sessions.state").all()) do
    local tree = type(s.worktree) == "table" and type(s.worktree.path) == "string" and s.worktree.path
    if tree and (real == tree or vim.startswith(real, tree .. "/")) then
      return s.project.root
    end
  end
  return path
end

return M
