--- Small helpers shared by the modules: windows, time, key help.
local M = {}

--- Show `buf`: focus a window of the current tab that shows it, else open one as `how`
--- says ("split", "vsplit", "tab", "current").
--- For a table of buffer states { [buf] = state }: { [buf] = state[field] } of the
--- buffers that still exist.
function M.live_buffers(by_buf, field)
  local out = {}
  for buf, st in pairs(by_buf) do
    if vim.api.nvim_buf_is_valid(buf) then
      out[buf] = st[field]
    end
  end
  return out
end

function M.show_buffer(buf, how)
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_buf(win) == buf then
      vim.api.nvim_set_current_win(win)
      return win
    end
  end
  if how == "vsplit" then
    vim.cmd("vsplit")
  elseif how == "tab" then
    vim.cmd("tab split")
  elseif how == "split" then
    vim.cmd("split")
  end
  vim.api.nvim_win_set_buf(0, buf)
  return vim.api.nvim_get_current_win()
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

--- Show a table of action -> key in a notification.
function M.show_keys(where, keys)
  local lines = { "codex-sessions keys in the " .. where .. ":" }
  local actions = vim.tbl_keys(keys)
  table.sort(actions)
  for _, action in ipairs(actions) do
    if keys[action] then
      table.insert(lines, string.format("  %-8s %s", keys[action], action:gsub("_", " ")))
    end
  end
  vim.notify(table.concat(lines, "\n"), vim.log.levels.INFO)
end

--- The directory a command acts on: a session or list buffer's project, the current
--- file's folder, or the working directory. The sidecar resolves the project root.
function M.project_path()
  local buffer = require("codex_sessions.buffer")
  local session = buffer.session_of(0)
  if session and session.project then
    return session.project.root
  end
  local ok, list = pcall(require, "codex_sessions.list")
  local root = ok and list.root_of(0)
  if root then
    return root
  end
  local name = vim.api.nvim_buf_get_name(0)
  if name ~= "" and vim.bo.buftype == "" and vim.fn.filereadable(name) == 1 then
    return vim.fn.fnamemodify(name, ":p:h")
  end
  return vim.fn.getcwd()
end

return M
