--- :CodexSessions and its subcommands, with completion.
local rpc = require("codex_sessions.rpc")
local util = require("codex_sessions.util")

local M = {}

local function actions()
  return require("codex_sessions.actions")
end

local function split_first(s)
  s = vim.trim(s or "")
  local first, rest = s:match("^(%S+)%s*(.*)$")
  return first, rest ~= "" and rest or nil
end

local function need(value, usage)
  if value == nil or value == "" then
    vim.notify("codex-sessions: usage: :CodexSessions " .. usage, vim.log.levels.ERROR)
    return false
  end
  return true
end

--- Names of the project's sessions (live; with `all`, also stopped), for completion.
--- Asks the sidecar, waiting a moment at most.
function M.session_names(filter, all)
  local params = { project = util.project_path(), all = all or false }
  local err, result = rpc.request_sync("codex/session/list", params, 1500)
  local names = {}
  if err or not result then
    return names
  end
  for _, s in ipairs(result.sessions or {}) do
    if not filter or filter(s) then
      table.insert(names, s.name)
    end
  end
  return names
end

M.subcommands = {
  list = {
    usage = "list",
    run = function() require("codex_sessions.list").open() end,
  },
  start = {
    usage = "start [name] [prompt]",
    run = function(args)
      local name, prompt = split_first(args)
      actions().start(name, prompt)
    end,
    complete = function() return M.session_names() end,
  },
  switch = {
    usage = "switch {name}",
    run = function(args)
      if need(args, "switch {name}") then
        actions().switch(vim.trim(args))
      end
    end,
    complete = function() return M.session_names() end,
  },
  kill = {
    usage = "kill [name]",
    run = function(args)
      local name = split_first(args)
      actions().kill(name)
    end,
    complete = function() return M.session_names() end,
  },
  killall = {
    usage = "killall[!]",
    run = function(_, bang)
      actions().kill_all(bang)
    end,
  },
  rename = {
    usage = "rename {old} {new}",
    run = function(args)
      local old, new = split_first(args)
      if new == nil and old ~= nil then
        -- one name: rename the current buffer's session
        local session = require("codex_sessions.buffer").session_of(0)
        if session then
          actions().rename({ id = session.id }, old)
          return
        end
      end
      if need(old, "rename {old} {new}") and need(new, "rename {old} {new}") then
        actions().rename(old, vim.trim(new))
      end
    end,
    complete = function(_, nargs)
      return nargs <= 1 and M.session_names() or {}
    end,
  },
  send = {
    usage = "send [name] {prompt}",
    run = function(args)
      if not need(args, "send [name] {prompt}") then
        return
      end
      local first, rest = split_first(args)
      if not rest then
        actions().send(nil, vim.trim(args))
        return
      end
      -- the first word names a session only if the project has a live one of that name
      rpc.request("codex/session/list", { project = util.project_path() }, function(err, result)
        if err then
          rpc.notify_error(err)
          return
        end
        for _, s in ipairs(result.sessions or {}) do
          if s.name == first then
            actions().send({ id = s.id }, rest)
            return
          end
        end
        actions().send(nil, vim.trim(args))
      end)
    end,
    complete = function(_, nargs)
      return nargs <= 1 and M.session_names() or {}
    end,
  },
  cancel = {
    usage = "cancel [name]",
    run = function(args) actions().cancel(split_first(args)) end,
    complete = function() return M.session_names() end,
  },
  report = {
    usage = "report [name]",
    run = function(args) actions().report(split_first(args)) end,
    complete = function() return M.session_names() end,
  },
  resume = {
    usage = "resume {name}",
    run = function(args)
      if need(args, "resume {name}") then
        actions().resume(vim.trim(args))
      end
    end,
    complete = function()
      return M.session_names(function(s)
        return s.status == "stopped" or s.status == "interrupted" or s.status == "failed"
      end, true)
    end,
  },
}

--- Run `:CodexSessions[!] {args}`.
function M.run(opts)
  local args = opts.args or ""
  local sub, rest = split_first(args)
  local bang = opts.bang
  if sub == nil then
    return M.subcommands.list.run()
  end
  if sub:sub(-1) == "!" then
    sub, bang = sub:sub(1, -2), true
  end
  local command = M.subcommands[sub]
  if not command then
    local names = vim.tbl_keys(M.subcommands)
    table.sort(names)
    vim.notify(string.format("codex-sessions: unknown subcommand %q; one of: %s", sub, table.concat(names, ", ")),
      vim.log.levels.ERROR)
    return
  end
  command.run(rest or "", bang)
end

--- Completion of `:CodexSessions ...`.
function M.complete(arglead, cmdline, _)
  local words = vim.split(cmdline:gsub("^%s*%S+%s*", ""), "%s+", { trimempty = false })
  if #words <= 1 then
    local names = vim.tbl_keys(M.subcommands)
    table.insert(names, "killall!")
    table.sort(names)
    return vim.tbl_filter(function(n) return vim.startswith(n, arglead) end, names)
  end
  local command = M.subcommands[(words[1]:gsub("!$", ""))]
  if not command or not command.complete then
    return {}
  end
  local nargs = #words - 1 -- the argument being completed is number nargs
  local ok, found = pcall(command.complete, arglead, nargs)
  if not ok or type(found) ~= "table" then
    return {}
  end
  if nargs > 1 and command ~= M.subcommands.rename and command ~= M.subcommands.send then
    return {}
  end
  return vim.tbl_filter(function(n) return vim.startswith(n, arglead) end, found)
end

return M
