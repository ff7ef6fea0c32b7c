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

--- A short statusline string such as "codex: 2 running, 1 waiting" ("" when nothing
--- runs or waits).
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
local function action(name)
  return function(...)
    return require("codex_sessions.actions")[name](...)
  end
end
M.start = action("start")
M.switch = action("switch")
M.kill = action("kill")
M.kill_all = action("kill_all")
M.forget = action("forget")
M.rename = action("rename")
M.send = action("send")
M.send_context = action("send_context")
M.cancel = action("cancel")
M.report = action("report")
M.resume = action("resume")
M.pending = action("pending")
M.steer = action("steer")
M.fork = action("fork")
M.review = action("review")
M.adopt = action("adopt")
M.jump = action("jump")
M.tui = action("tui")
M.notes = action("notes")
M.learn = action("learn")
M.learnings = action("learnings")

-- A session's own work tree: its diff, merge (staged), discard.
local function worktree(name)
  return function(...)
    return require("codex_sessions.worktree")[name](...)
  end
end
M.diff = worktree("diff")
M.merge = worktree("merge")
M.discard = worktree("discard")

--- Open (or, from the list itself, close) the session list of the current project.
function M.list()
  require("codex_sessions.list").open()
end

--- Send a request to the daemon (connecting if needed): callback(err, result).
function M.request(method, params, callback)
  require("codex_sessions.state") -- notification handlers
  require("codex_sessions.rpc").request(method, params, callback)
end

--- End this Neovim's connection to the daemon (its sessions go on).
function M.stop()
  require("codex_sessions.rpc").disconnect()
end

--- Neovim exits: say once what goes on in the background and how to stop it, then
--- disconnect. The notice stays on screen for a moment, or it would vanish with Neovim.
function M.on_exit()
  local state = require("codex_sessions.state")
  local busy = state.busy()
  -- (a standalone sidecar, `serve --standalone`, stops them with this connection, as chosen)
  if #busy > 0 and state.daemon() ~= false and require("codex_sessions.config").options.notify.exit then
    local names = {}
    for _, s in ipairs(busy) do
      table.insert(names, s.name)
    end
    vim.notify(state.one_line(string.format(
      "codex-sessions: %d turn%s go%s on in the background (%s); stop: `codex-sessions daemon stop` or :CodexSessions killall",
      #busy, #busy == 1 and "" or "s", #busy == 1 and "es" or "", table.concat(names, ", "))), vim.log.levels.WARN)
    if #vim.api.nvim_list_uis() > 0 then
      vim.cmd("redraw")
      vim.wait(1500)
    end
  end
  require("codex_sessions.rpc").disconnect()
end

return M
