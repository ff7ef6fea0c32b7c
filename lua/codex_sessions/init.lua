--- codex-sessions for Neovim: named OpenAI Codex sessions per project, run by the
--- codex-sessions sidecar. See :help codex-sessions.
local M = {}

--- Configure the plugin (optional: it works with the defaults). Bad options are
--- reported with an ERROR notification and their defaults kept.
---@param opts codex_sessions.Config|nil
function M.setup(opts)
  return require("codex_sessions.config").setup(opts)
end

--- Counts of the sessions this Neovim knows of: { running, waiting, failed, idle, total }.
function M.counts()
  return require("codex_sessions.state").counts()
end

--- A short statusline string such as "codex 2▶ 1?" ("" when nothing runs or waits).
function M.statusline()
  local c = M.counts()
  if c.running == 0 and c.waiting == 0 then
    return ""
  end
  local parts = {}
  if c.running > 0 then
    table.insert(parts, c.running .. " running")
  end
  if c.waiting > 0 then
    table.insert(parts, c.waiting .. " waiting")
  end
  return "codex: " .. table.concat(parts, ", ")
end

-- The actions behind the commands, for users' own mappings.
local actions = setmetatable({}, {
  __index = function(_, key)
    return require("codex_sessions.actions")[key]
  end,
})
M.start = function(...) return actions.start(...) end
M.switch = function(...) return actions.switch(...) end
M.kill = function(...) return actions.kill(...) end
M.kill_all = function(...) return actions.kill_all(...) end
M.rename = function(...) return actions.rename(...) end
M.send = function(...) return actions.send(...) end
M.cancel = function(...) return actions.cancel(...) end
M.report = function(...) return actions.report(...) end
M.resume = function(...) return actions.resume(...) end

--- Open the session list of the current project.
function M.list()
  require("codex_sessions.list").open()
end

--- Send a request to the sidecar (started if needed): callback(err, result).
function M.request(method, params, callback)
  require("codex_sessions.state") -- notification handlers
  require("codex_sessions.rpc").request(method, params, callback)
end

--- Stop the sidecar (its Codex processes stop; records are kept).
function M.stop()
  require("codex_sessions.rpc").stop()
end

return M
