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

--- Words of `args` taken from the front: flags (`--x` or `--x=value`) wherever they
--- come, and up to `max_words` plain words; the rest, as typed, once a further plain
--- word begins it (or after `--`). Returns flags {name -> value or true; repeated
--- names collect in a list under name .. "[]"}, words, rest.
local function parse(args, max_words)
  local flags, words = {}, {}
  local rest = vim.trim(args or "")
  while rest ~= "" do
    local word, after = rest:match("^(%S+)%s*(.*)$")
    if word == "--" then
      rest = after
      break
    elseif word:sub(1, 2) == "--" and #word > 2 then
      local name, value = word:match("^%-%-([^=]+)=(.*)$")
      name = name or word:sub(3)
      if value == nil then
        value = true
      end
      flags[name] = value
      flags[name .. "[]"] = flags[name .. "[]"] or {}
      table.insert(flags[name .. "[]"], value)
      rest = after
    elseif #words < max_words then
      table.insert(words, word)
      rest = after
    else
      break
    end
  end
  return flags, words, rest ~= "" and rest or nil
end
M.parse = parse

--- An ERROR naming the flags of `flags` that `allowed` does not know; true when none.
local function known_flags(flags, allowed, usage)
  for name in pairs(flags) do
    if not name:match("%[%]$") and not allowed[name] then
      util.notify(string.format("codex-sessions: unknown option --%s; usage: :CodexSessions %s", name, usage),
        vim.log.levels.ERROR)
      return false
    end
  end
  for name, kind in pairs(allowed) do
    local v = flags[name]
    if v ~= nil and kind == "value" and (v == true or v == "") then
      util.notify(string.format("codex-sessions: --%s needs a value (--%s=...); usage: :CodexSessions %s", name, name,
        usage), vim.log.levels.ERROR)
      return false
    elseif v ~= nil and kind == "switch" and v ~= true then
      util.notify(string.format("codex-sessions: --%s takes no value; usage: :CodexSessions %s", name, usage),
        vim.log.levels.ERROR)
      return false
    end
  end
  return true
end

local ROLES = { "worker", "explorer", "verifier" }

--- The efforts Codex offers for `model` (else for its default model), or nil when the
--- models are not known.
local function efforts_of(models, model)
  if not models then
    return nil
  end
  local found, default
  for _, m in ipairs(models) do
    if m.id == model then
      found = m
    end
    if m.isDefault == true then
      default = m
    end
  end
  local m = found or default
  return m and type(m.efforts) == "table" and #m.efforts > 0 and m.efforts or nil
end

local START_USAGE = "start[!] [name] [--worktree|--shared] [--role=R] [--scope=GLOB]... [--model=M] [--effort=E] "
  .. "[--notes] [--learn] [prompt]"
local START_FLAGS = { worktree = "switch", shared = "switch", role = "value", scope = "value", model = "value",
  effort = "value", notes = "switch", learn = "switch" }

local function run_start(args, bang)
  local flags, words, prompt = parse(args, 1)
  if not known_flags(flags, START_FLAGS, START_USAGE) then
    return
  end
  if flags.worktree and flags.shared then
    util.notify("codex-sessions: --worktree or --shared, not both", vim.log.levels.ERROR)
    return
  end
  if flags.role and not vim.tbl_contains(ROLES, flags.role) then
    util.notify(string.format("codex-sessions: --role must be one of %s (got %q)", table.concat(ROLES, ", "),
      flags.role), vim.log.levels.ERROR)
    return
  end
  local opts = {
    fresh = bang,
    isolation = flags.worktree and "worktree" or (flags.shared and "shared" or nil),
    role = flags.role,
    scope = flags["scope[]"],
    model = flags.model,
    effort = flags.effort,
    notes = flags.notes or nil,
    learn = flags.learn or nil,
  }
  local function go()
    actions().start(words[1], prompt, nil, opts)
  end
  if not opts.effort then
    return go()
  end
  -- Codex takes any word as an effort: a typo is caught here, where the efforts are known
  state().models(function(models)
    local efforts = efforts_of(models, opts.model)
    if efforts and not vim.tbl_contains(efforts, opts.effort) then
      util.notify(string.format("codex-sessions: --effort must be one of %s (got %q)", table.concat(efforts, ", "),
        opts.effort), vim.log.levels.ERROR)
      return
    end
    go()
  end)
end

--- Completion of a `--flag=value` being typed, from `values(name)`.
local function complete_flags(arglead, allowed, values)
  local name = arglead:match("^%-%-([^=]+)=")
  if name then
    local out = {}
    for _, v in ipairs(allowed[name] and values(name) or {}) do
      table.insert(out, "--" .. name .. "=" .. v)
    end
    return out
  end
  local out = {}
  for flag, kind in pairs(allowed) do
    table.insert(out, "--" .. flag .. (kind == "value" and "=" or ""))
  end
  table.sort(out)
  return out
end

local function model_ids()
  local out = {}
  for _, m in ipairs(state().models() or {}) do
    table.insert(out, m.id)
  end
  return out
end

--- Branches of the project's repository (local and remote), for --base=.
local function branches()
  local ok, result = pcall(function()
    return vim.system({ "git", "for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/remotes" },
      { cwd = util.project_path(), text = true }):wait(1000)
  end)
  if not ok or not result or result.code ~= 0 then
    return {}
  end
  return vim.split(result.stdout or "", "\n", { trimempty = true })
end

local function has_tree(s)
  return type(s.worktree) == "table"
end

local function unmerged(s)
  return has_tree(s) and s.worktree.merged ~= true
end

--- `:CodexSessions notes|learn on|off [name]`.
local function switch_command(what)
  local usage = what .. " on|off [name]"
  return {
    usage = usage,
    run = function(args)
      local word, rest = split_first(args)
      if word ~= "on" and word ~= "off" then
        util.notify(string.format("codex-sessions: %s takes on or off%s; usage: :CodexSessions %s", what,
          word and string.format(" (got %q)", word) or "", usage), vim.log.levels.ERROR)
        return
      end
      local name, extra = split_first(rest)
      if extra then
        util.notify("codex-sessions: usage: :CodexSessions " .. usage, vim.log.levels.ERROR)
        return
      end
      actions()[what](name, word == "on")
    end,
    complete = function(_, nargs, words)
      if nargs == 1 then
        return { "on", "off" }
      elseif nargs == 2 then
        local on = words[2] == "on"
        return M.session_names(function(s)
          if what == "notes" then
            return s.notes ~= on
          end
          return (type(s.learn) == "table" and s.learn.on == true) ~= on
        end)
      end
      return {}
    end,
  }
end

M.subcommands = {
  list = {
    usage = "list",
    run = function() require("codex_sessions.list").open() end,
  },
  start = {
    usage = START_USAGE,
    run = run_start,
    complete = function(arglead, nargs, words)
      state().models() -- asked now, offered by the time --model= is typed
      if arglead:sub(1, 2) == "--" then
        return complete_flags(arglead, START_FLAGS, function(name)
          if name == "role" then
            return ROLES
          elseif name == "model" then
            return model_ids()
          elseif name == "effort" then
            local model
            for _, w in ipairs(words) do
              model = w:match("^%-%-model=(.+)$") or model
            end
            return efforts_of(state().models(), model) or {}
          end
          return {}
        end)
      end
      for i = 2, nargs - 1 do
        if words[i] and words[i]:sub(1, 2) ~= "--" then
          return {} -- the name is given: a prompt follows
        end
      end
      return M.session_names()
    end,
  },
  switch = {
    usage = "switch [name]",
    run = function(args) actions().switch(vim.trim(args)) end,
    complete = function(_, nargs) return nargs == 1 and M.session_names() or {} end,
  },
  kill = {
    usage = "kill [name]",
    run = function(args) actions().kill((split_first(args))) end,
    complete = function(_, nargs)
      return nargs == 1 and M.session_names(function(s) return not not_live(s) end) or {}
    end,
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
    complete = function(_, nargs) return nargs == 1 and M.session_names(not_live) or {} end,
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
    complete = function(_, nargs)
      return nargs == 1 and M.session_names(function(s) return not not_live(s) end) or {}
    end,
  },
  report = {
    usage = "report [name]",
    run = function(args) actions().report((split_first(args))) end,
    complete = function(_, nargs) return nargs == 1 and M.session_names() or {} end,
  },
  resume = {
    usage = "resume [name]",
    run = function(args) actions().resume(vim.trim(args)) end,
    complete = function(_, nargs) return nargs == 1 and M.session_names(not_live) or {} end,
  },
  pending = {
    usage = "pending",
    run = function() actions().pending() end,
  },
  steer = {
    usage = "steer [name] {text}",
    run = function(args)
      if not need(args, "steer [name] {text}") then
        return
      end
      name_and_prompt(args, function(name, text)
        if not text then
          util.notify("codex-sessions: usage: :CodexSessions steer [name] {text}", vim.log.levels.ERROR)
          return
        end
        local ref = actions().ref(name)
        local s = actions().cached(ref)
        if not s or not (s.status == "running" or s.status == "waiting") then
          util.notify(string.format("codex-sessions: %s runs no turn to add to: send a prompt instead",
            s and s.name or (ref.name or "this session")), vim.log.levels.ERROR)
          return
        end
        actions().steer(ref, text)
      end)
    end,
    complete = function(_, nargs)
      return nargs == 1 and M.session_names(function(s) return s.status == "running" or s.status == "waiting" end)
        or {}
    end,
  },
  diff = {
    usage = "diff [name]",
    run = function(args) require("codex_sessions.worktree").diff((split_first(args))) end,
    complete = function(_, nargs) return nargs == 1 and M.session_names() or {} end,
  },
  merge = {
    usage = "merge [name] [--commit]",
    run = function(args)
      local flags, words = parse(args, 1)
      if known_flags(flags, { commit = "switch", squash = "switch" }, "merge [name] [--commit]") then
        require("codex_sessions.worktree").merge(words[1], flags.commit and "commit" or "squash")
      end
    end,
    complete = function(arglead, nargs)
      if arglead:sub(1, 2) == "--" then
        return { "--commit", "--squash" }
      end
      return nargs == 1 and M.session_names(unmerged) or {}
    end,
  },
  discard = {
    usage = "discard [name]",
    run = function(args) require("codex_sessions.worktree").discard((split_first(args))) end,
    complete = function(_, nargs) return nargs == 1 and M.session_names(has_tree) or {} end,
  },
  fork = {
    usage = "fork [name] {new} [--at-turn=N]",
    run = function(args)
      local usage = "fork [name] {new} [--at-turn=N]"
      local flags, words, extra = parse(args, 2)
      if not known_flags(flags, { ["at-turn"] = "value" }, usage) then
        return
      end
      if extra or #words == 0 then
        util.notify("codex-sessions: usage: :CodexSessions " .. usage, vim.log.levels.ERROR)
        return
      end
      local at = flags["at-turn"]
      if at and not (tonumber(at) and tonumber(at) >= 1 and math.floor(tonumber(at)) == tonumber(at)) then
        util.notify(string.format("codex-sessions: --at-turn must be a turn number, 1 or more (got %q)", at),
          vim.log.levels.ERROR)
        return
      end
      local name, new = words[1], words[2]
      if #words == 1 then
        name, new = nil, words[1]
      end
      actions().fork(name, new, at and tonumber(at) or nil)
    end,
    complete = function(arglead, nargs, words)
      if arglead:sub(1, 2) == "--" then
        return complete_flags(arglead, { ["at-turn"] = "value" }, function()
          local s = words[2] and state().find(util.project_path(), words[2])
          local out = {}
          for i = 1, (s and s.turns or 0) do
            table.insert(out, tostring(i))
          end
          return out
        end)
      end
      return nargs == 1 and M.session_names(function(s) return (s.turns or 0) > 0 end) or {}
    end,
  },
  review = {
    usage = "review [--base=BRANCH | --commit=SHA] [name]",
    run = function(args)
      local usage = "review [--base=BRANCH | --commit=SHA] [name]"
      local flags, words, extra = parse(args, 1)
      if not known_flags(flags, { base = "value", commit = "value" }, usage) then
        return
      end
      if extra or (flags.base and flags.commit) then
        util.notify("codex-sessions: usage: :CodexSessions " .. usage, vim.log.levels.ERROR)
        return
      end
      local target = "uncommittedChanges"
      if flags.base then
        target = { baseBranch = flags.base }
      elseif flags.commit then
        target = { commit = flags.commit }
      end
      actions().review(target, words[1])
    end,
    complete = function(arglead)
      if arglead:sub(1, 2) == "--" then
        return complete_flags(arglead, { base = "value", commit = "value" }, function(name)
          return name == "base" and branches() or {}
        end)
      end
      return {}
    end,
  },
  adopt = {
    usage = "adopt [name]",
    run = function(args) actions().adopt((split_first(args))) end,
  },
  notes = switch_command("notes"),
  learn = switch_command("learn"),
  learnings = {
    usage = "learnings",
    run = function(args)
      if vim.trim(args) ~= "" then
        util.notify("codex-sessions: usage: :CodexSessions learnings (the current project's)", vim.log.levels.ERROR)
        return
      end
      actions().learnings()
    end,
  },
  tui = {
    usage = "tui [name]",
    run = function(args) actions().tui((split_first(args))) end,
    complete = function(_, nargs) return nargs == 1 and M.session_names() or {} end,
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
  local n = tonumber(sub)
  if n and sub:match("^%d+$") then
    if n < 1 or n > state().NUMBERED then
      util.notify(string.format("codex-sessions: sessions are numbered 1 to %d (got %s)", state().NUMBERED, sub),
        vim.log.levels.ERROR)
      return
    end
    actions().jump(n)
    return
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
  local ok, found = pcall(command.complete, arglead, nargs, words)
  if not ok or type(found) ~= "table" then
    return {}
  end
  return vim.tbl_filter(function(n) return vim.startswith(n, arglead) end, found)
end

return M
