--- Options of codex-sessions: typed defaults, validation, the merged result.
local M = {}

---@class codex_sessions.Keys
---@field list table<string, string|false>     keys of the session list
---@field session table<string, string|false>  keys of a session buffer
---@field diff table<string, string|false>     keys of a session's diff
---@field review table<string, string|false>   keys of a prompt review (learn mode)

---@class codex_sessions.Config
---@field cmd string[]                     argv that starts the sidecar
---@field env table<string,string>|nil     extra environment for the sidecar
---@field state_dir string|nil             initializationOptions.stateDir
---@field codex_command string[]|nil       initializationOptions.codexCommand
---@field codex_args string[]|nil          initializationOptions.codexArgs (appended to the command)
---@field codex_process string|nil         "perProject" (one Codex per project) or "perSession"
---@field max_sessions_per_project integer|nil
---@field max_running integer|nil
---@field output_limit_bytes integer|nil
---@field model string|nil                 model for new sessions (sidecar's default if nil)
---@field effort string|nil                reasoning effort for new sessions (the model's default if nil)
---@field isolation string|nil             where new sessions work: "shared" (the project's tree) or "worktree"
---@field steer string|false               sending while a turn runs: "ask" to add it to the turn, "always", or false (refused)
---@field sandbox string|nil               sandbox for new sessions
---@field approval_policy string|nil       approval policy for new sessions
---@field notes boolean                    the notetaker for sessions this Neovim starts (spends model tokens)
---@field open string                      where a session opens when no session window is shown: "split", "vsplit", "tab", "current"
---@field list_layout string               the list panel: "bottom", "top", "left", "right" or "float"
---@field notify { finished: boolean, waiting: boolean, exit: boolean }
---@field request_timeout integer          ms a blocking request (request_sync, :checkhealth) may take
---@field keys codex_sessions.Keys
M.defaults = {
  cmd = { "codex-sessions", "serve" },
  env = nil,
  state_dir = nil,
  codex_command = nil,
  codex_args = nil,
  codex_process = nil,
  max_sessions_per_project = nil,
  max_running = nil,
  output_limit_bytes = nil,
  model = nil,
  effort = nil,
  isolation = nil,
  steer = "ask",
  sandbox = nil,
  approval_policy = nil,
  notes = false,
  open = "split",
  list_layout = "bottom",
  notify = { finished = true, waiting = true, exit = true },
  request_timeout = 2000,
  keys = {
    list = {
      open = "<CR>",
      accept = "a",
      accept_for_session = "A",
      decline = "x",
      kill = "d",
      kill_all = "D",
      forget = "X",
      rename = "r",
      cancel = "c",
      report = "R",
      new = "s",
      stopped = "S",
      diff = "=",
      merge = "M",
      discard = "W",
      fork = "F",
      tui = "T",
      refresh = "<C-l>",
      close = "q",
      help = "g?",
    },
    session = {
      send = "<C-s>",
      send_normal = "<CR>",
      accept = "<localleader>a",
      accept_for_session = "<localleader>s",
      decline = "<localleader>d",
      cancel = "<C-c>",
      report = "<localleader>r",
      fork = "<localleader>f",
      diff = "<localleader>v",
      tui = "<localleader>t",
      list = "<localleader>l",
      help = "g?",
    },
    review = {
      accept = "<localleader>a",
      edit = "<localleader>e",
      decline = "<localleader>d",
      cancel = "<localleader>c",
      close = "q",
      help = "g?",
    },
    diff = {
      open = "<CR>",
      goto_file = "gf",
      merge = "<localleader>m",
      discard = "<localleader>x",
      refresh = "<C-l>",
      close = "q",
      help = "g?",
    },
  },
}

--- The session a command means when it names none (one place for the whole plugin).
M.DEFAULT_NAME = "main"

---@type codex_sessions.Config
M.options = vim.deepcopy(M.defaults)

local function is_list_of_strings(v)
  if type(v) ~= "table" or not vim.islist(v) or #v == 0 then
    return false
  end
  for _, s in ipairs(v) do
    if type(s) ~= "string" or s == "" then
      return false
    end
  end
  return true
end

local function positive_int(v)
  return type(v) == "number" and v >= 1 and math.floor(v) == v
end

-- Each option: a check and what it must be, for the message.
local rules = {
  cmd = { is_list_of_strings, "a non-empty list of strings" },
  env = { function(v) return v == nil or type(v) == "table" end, "a table of strings or nil" },
  state_dir = { function(v) return v == nil or type(v) == "string" end, "a string or nil" },
  codex_command = { function(v) return v == nil or is_list_of_strings(v) end, "a non-empty list of strings or nil" },
  codex_args = { function(v) return v == nil or is_list_of_strings(v) end, "a non-empty list of strings or nil" },
  codex_process = {
    function(v) return v == nil or v == "perProject" or v == "perSession" end,
    '"perProject", "perSession" or nil',
  },
  max_sessions_per_project = { function(v) return v == nil or positive_int(v) end, "a positive integer or nil" },
  max_running = { function(v) return v == nil or positive_int(v) end, "a positive integer or nil" },
  output_limit_bytes = { function(v) return v == nil or positive_int(v) end, "a positive integer or nil" },
  model = { function(v) return v == nil or type(v) == "string" end, "a string or nil" },
  effort = { function(v) return v == nil or type(v) == "string" end, "a string or nil" },
  isolation = {
    function(v) return v == nil or v == "shared" or v == "worktree" end,
    '"shared", "worktree" or nil',
  },
  steer = {
    function(v) return v == false or v == "ask" or v == "always" end,
    '"ask", "always" or false',
  },
  sandbox = {
    function(v) return v == nil or vim.tbl_contains({ "read-only", "workspace-write", "danger-full-access" }, v) end,
    '"read-only", "workspace-write", "danger-full-access" or nil',
  },
  approval_policy = {
    function(v) return v == nil or vim.tbl_contains({ "untrusted", "on-failure", "on-request", "never" }, v) end,
    '"untrusted", "on-failure", "on-request", "never" or nil',
  },
  notes = { function(v) return type(v) == "boolean" end, "a boolean" },
  open = {
    function(v) return vim.tbl_contains({ "split", "vsplit", "tab", "current" }, v) end,
    '"split", "vsplit", "tab" or "current"',
  },
  list_layout = {
    function(v) return vim.tbl_contains({ "bottom", "top", "left", "right", "float" }, v) end,
    '"bottom", "top", "left", "right" or "float"',
  },
  notify = { function(v) return type(v) == "table" end,
    "a table { finished = boolean, waiting = boolean, exit = boolean }" },
  ["notify.finished"] = { function(v) return type(v) == "boolean" end, "a boolean" },
  ["notify.waiting"] = { function(v) return type(v) == "boolean" end, "a boolean" },
  ["notify.exit"] = { function(v) return type(v) == "boolean" end, "a boolean" },
  request_timeout = { positive_int, "a positive integer (milliseconds)" },
  keys = { function(v) return type(v) == "table" end, "a table { list = {...}, session = {...}, diff = {...}, review = {...} }" },
  ["keys.list"] = { function(v) return type(v) == "table" end, "a table of action = key" },
  ["keys.session"] = { function(v) return type(v) == "table" end, "a table of action = key" },
  ["keys.diff"] = { function(v) return type(v) == "table" end, "a table of action = key" },
  ["keys.review"] = { function(v) return type(v) == "table" end, "a table of action = key" },
}

local function describe(v)
  return type(v) == "string" and string.format("%q", v) or vim.inspect(v)
end

--- Validate `opts` against the rules; return the merged options and a list of problems.
--- A bad option is reported and its default kept.
---@param opts table|nil
---@return codex_sessions.Config, string[]
function M.validate(opts)
  local problems = {}
  local result = vim.deepcopy(M.defaults)
  if opts == nil then
    return result, problems
  end
  if type(opts) ~= "table" then
    return result, { "setup() expects a table of options, got " .. type(opts) }
  end
  local function check(path, value)
    local rule = rules[path]
    if not rule then
      table.insert(problems, string.format("unknown option `%s`", path))
      return false
    end
    if not rule[1](value) then
      table.insert(problems, string.format("option `%s` must be %s (got %s)", path, rule[2], describe(value)))
      return false
    end
    return true
  end
  for key, value in pairs(opts) do
    if key == "notify" then
      if check("notify", value) then
        for k, v in pairs(value) do
          if check("notify." .. k, v) then
            result.notify[k] = v
          end
        end
      end
    elseif key == "keys" then
      if check("keys", value) then
        for group, keys in pairs(value) do
          if check("keys." .. group, keys) then
            for action, lhs in pairs(keys) do
              if M.defaults.keys[group][action] == nil then
                table.insert(problems, string.format("unknown key action `keys.%s.%s`", group, action))
              elseif lhs ~= false and (type(lhs) ~= "string" or lhs == "") then
                table.insert(problems, string.format(
                  "option `keys.%s.%s` must be a key (string) or false (got %s)", group, action, describe(lhs)))
              else
                result.keys[group][action] = lhs
              end
            end
          end
        end
      end
    elseif check(key, value) then
      result[key] = vim.deepcopy(value)
    end
  end
  return result, problems
end

--- Apply options; report bad ones with one ERROR notification.
---@param opts table|nil
function M.setup(opts)
  local merged, problems = M.validate(opts)
  M.options = merged
  M.user_options = opts
  if #problems > 0 then
    vim.notify("codex-sessions: bad options in setup():\n- " .. table.concat(problems, "\n- "),
      vim.log.levels.ERROR)
  end
  return problems
end

--- The sidecar's initializationOptions from the options that are set.
function M.init_options()
  local o = M.options
  local init = vim.empty_dict()
  local map = {
    stateDir = o.state_dir and vim.fn.expand(o.state_dir) or nil,
    codexCommand = o.codex_command,
    codexArgs = o.codex_args,
    codexProcess = o.codex_process,
    maxSessionsPerProject = o.max_sessions_per_project,
    maxRunning = o.max_running,
    outputLimitBytes = o.output_limit_bytes,
    notes = o.notes or nil,
  }
  for k, v in pairs(map) do
    init[k] = v
  end
  return init
end

return M
