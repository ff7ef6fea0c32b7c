--- :CodexSessions and its subcommands, with completion from the cache (never a request:
--- the first completion starts the connection in the background and offers what is known).
local rpc = require("codex_sessions.rpc")
local util = require("codex_sessions.util")

local M = {}

local function actions()
  return require("codex_sessions.actions")
end

local function state()
  return require("codex_sessions.state")
end

local function split_first(s)
  s = vim.trim(s or "")
  local first, rest = s:match("^(%S+)%s*(.*)$")
  return first, rest ~= "" and rest or nil
end

local function need(value, usage)
  if value == nil or value == "" then
    util.notify("codex-sessions: usage: :CodexSessions " .. usage, vim.log.levels.ERROR)
    return false
  end
  return true
end

--- Names of the current project's sessions known to this Neovim (stopped ones too),
--- those `filter` keeps, for completion.
function M.session_names(filter)
  rpc.connect()
  local root = state().root_for(util.project_path())
  local names = {}
  for _, s in ipairs(root and state().of_project(root, true) or {}) do
    if not filter or filter(s) then
      table.insert(names, s.name)
    end
  end
  return names
end

local function not_live(s)
  return s.status == "stopped" or s.status == "interrupted" or s.status == "failed"
end

--- `args` as "[name] prompt": the first word is a name when the project has a session
--- of that name (of any status). Calls `fn(name, prompt)` once the cache is known.
local function name_and_prompt(args, fn)
  local first, rest = split_first(args)
  state().when_synced(function()
    if first and state().find(util.project_path(), first) then
      fn(first, rest)
    else
      fn(nil, args ~= "" and vim.trim(args) or nil)
    end
  end)
end

M.subcommands = {
  list = {
    usage = "list",
    run = function() require("codex_sessions.list").open() end,
  },
  start = {
    usage = "start[!] [name] [prompt]",
    run = function(args, bang)
      local name, prompt = split_first(args)
      actions().start(name, prompt, nil, { fresh = bang })
    end,
    complete = function() return M.session_names() end,
  },
  switch = {
    usage = "switch [name]",
    run = function(args) actions().switch(vim.trim(args)) end,
    complete = function() return M.session_names() end,
  },
  kill = {
    usage = "kill [name]",
    run = function(args) actions().kill((split_first(args))) end,
    complete = function() return M.session_names(function(s) return not not_live(s) end) end,
  },
  killall = {
    usage = "killall[!]",
    run = function(_, bang) actions().kill_all(bang) end,
  },
  forget = {
    usage = "forget {name}",
    run = function(args)
      if need(args, "forget {name}") then
        local name = vim.trim(args)
        actions().forget(name, { name = name })
      end
    end,
    complete = function() return M.session_names(not_live) end,
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
    usage = "[range]send [name] {prompt}",
    run = function(args, _, range)
      if range then
        name_and_prompt(args, function(name, prompt)
          actions().send_context(name, prompt, range[1], range[2])
        end)
        return
      end
      if not need(args, "send [name] {prompt}") then
        return
      end
      name_and_prompt(args, function(name, prompt)
        if not prompt then
          util.notify("codex-sessions: usage: :CodexSessions send [name] {prompt}", vim.log.levels.ERROR)
          return
        end
        actions().send(name, prompt)
      end)
    end,
    complete = function(_, nargs)
      return nargs <= 1 and M.session_names() or {}
    end,
  },
  file = {
    usage = "file [name] [prompt]",
    run = function(args)
      name_and_prompt(args, function(name, prompt)
        actions().send_context(name, prompt)
      end)
    end,
    complete = function(_, nargs)
      return nargs <= 1 and M.session_names() or {}
    end,
  },
  cancel = {
    usage = "cancel [name]",
    run = function(args) actions().cancel((split_first(args))) end,
    complete = function() return M.session_names(function(s) return not not_live(s) end) end,
  },
  report = {
    usage = "report [name]",
    run = function(args) actions().report((split_first(args))) end,
    complete = function() return M.session_names() end,
  },
  resume = {
    usage = "resume [name]",
    run = function(args) actions().resume(vim.trim(args)) end,
    complete = function() return M.session_names(not_live) end,
  },
  pending = {
    usage = "pending",
    run = function() actions().pending() end,
  },
}

--- Run `:[range]CodexSessions[!] {args}`.
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
    util.notify(string.format("codex-sessions: unknown subcommand %q; one of: %s", sub, table.concat(names, ", ")),
      vim.log.levels.ERROR)
    return
  end
  local range = (opts.range or 0) > 0 and { opts.line1, opts.line2 } or nil
  if range and sub ~= "send" then
    util.notify("codex-sessions: only `send` takes a range (the lines to send)", vim.log.levels.ERROR)
    return
  end
  command.run(rest or "", bang, range)
end

--- Completion of `:CodexSessions ...`.
function M.complete(arglead, cmdline, _)
  local words = vim.split(cmdline:gsub("^%A*%a+!?%s*", ""), "%s+", { trimempty = false })
  if #words <= 1 then
    local names = vim.tbl_keys(M.subcommands)
    table.insert(names, "killall!")
    table.insert(names, "start!")
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
  if nargs > 1 and command ~= M.subcommands.rename and command ~= M.subcommands.send
    and command ~= M.subcommands.file then
    return {}
  end
  return vim.tbl_filter(function(n) return vim.startswith(n, arglead) end, found)
end

return M
