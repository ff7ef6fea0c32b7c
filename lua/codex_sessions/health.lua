--- :checkhealth codex_sessions — Neovim's version, the sidecar command, the Codex binary
--- and the state folder, each with advice when it fails.
local M = {}

local health = vim.health

--- `codex-sessions doctor` for a sidecar command ending in `serve`, else nil.
local function doctor_cmd(cmd)
  if cmd[#cmd] ~= "serve" then
    return nil
  end
  local argv = vim.list_slice(cmd, 1, #cmd - 1)
  table.insert(argv, "doctor")
  return argv
end

local function shell_join(argv)
  local out = {}
  for _, a in ipairs(argv) do
    table.insert(out, vim.fn.shellescape(a))
  end
  return table.concat(out, " ")
end

local function check_neovim()
  health.start("Neovim")
  local v = vim.version()
  local text = string.format("Neovim %d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok(text)
  else
    health.error(text .. " is too old", { "codex-sessions needs Neovim 0.10 or newer; upgrade Neovim" })
  end
end

local function check_options(config)
  health.start("Options")
  local _, problems = config.validate(config.user_options or {})
  if #problems == 0 then
    health.ok("setup() options are valid")
  else
    for _, p in ipairs(problems) do
      health.error(p, { "fix it in require('codex_sessions').setup({...}); see :help codex-sessions-options" })
    end
  end
end

local function check_sidecar(config, env)
  health.start("Sidecar")
  local cmd = config.options.cmd
  local exe = vim.fn.exepath(cmd[1])
  if exe == "" then
    health.error(string.format("sidecar command `%s` not found", table.concat(cmd, " ")), {
      "install it from the codex-sessions repository: pipx install /path/to/codex-sessions (or pip install . in a virtualenv), then restart Neovim",
      "or point the `cmd` option at it, e.g. cmd = { '/path/to/venv/bin/codex-sessions', 'serve' }",
    })
    return false
  end
  health.ok(string.format("sidecar command: %s (%s)", table.concat(cmd, " "), exe))
  local rpc = require("codex_sessions.rpc")
  if rpc.is_running() then
    local info = rpc.info()
    health.ok(string.format("sidecar running: %s %s", info.server and info.server.name or "?",
      info.server and info.server.version or "?"))
  else
    health.info("sidecar not running yet; it starts on the first :CodexSessions command")
  end
  return true
end

local function check_doctor(config, env)
  local argv = doctor_cmd(config.options.cmd)
  if not argv then
    health.start("Codex and state folder")
    health.warn("the sidecar command does not end in `serve`, so `doctor` cannot be run from it", {
      "run `codex-sessions doctor` in a terminal to check Codex and the state folder",
    })
    return
  end
  local ok, result = pcall(function()
    return vim.system(argv, { env = env, text = true }):wait(30000)
  end)
  if not ok or not result then
    health.start("Codex")
    health.error("could not run " .. table.concat(argv, " ") .. ": " .. tostring(result))
    return
  end
  local lines = vim.split((result.stdout or "") .. (result.stderr or ""), "\n", { trimempty = true })
  local entries = {}
  local last
  for _, line in ipairs(lines) do
    local advice = line:match("^%s+%->%s*(.*)$")
    local mark, what, detail = line:match("^(%a+)%s+([^:]+):%s*(.*)$")
    if advice and last then
      table.insert(last.advice, advice)
    elseif mark == "ok" or mark == "FAIL" or mark == "note" then
      last = { mark = mark, what = what, detail = detail, advice = {} }
      table.insert(entries, last)
    end
  end
  local sections = {
    { "Codex", { ["Codex"] = true, ["Codex login"] = true },
      { "install Codex: npm install -g @openai/codex",
        "or set the `codex_command` option (or $CODEX_SESSIONS_CODEX) to the Codex you use" } },
    { "State folder", { state = true },
      { "set the `state_dir` option (or $CODEX_SESSIONS_STATE_DIR) to a writable folder" } },
  }
  for _, section in ipairs(sections) do
    health.start(section[1])
    local seen = false
    for _, e in ipairs(entries) do
      if section[2][e.what] then
        seen = true
        local text = e.what .. ": " .. e.detail
        local advice = #e.advice > 0 and e.advice or section[3]
        if e.mark == "ok" then
          health.ok(text)
        elseif e.mark == "note" then
          health.warn(text, advice)
        else
          health.error(text, advice)
        end
      end
    end
    if not seen then
      health.error("`" .. table.concat(argv, " ") .. "` said nothing about " .. section[1]:lower()
        .. " (exit " .. tostring(result.code) .. ")", section[3])
    end
  end
end

function M.check()
  local config = require("codex_sessions.config")
  check_neovim()
  check_options(config)
  -- what the sidecar will see: the options as environment variables
  local env = vim.deepcopy(config.options.env or {})
  if config.options.state_dir then
    env.CODEX_SESSIONS_STATE_DIR = vim.fn.expand(config.options.state_dir)
  end
  if config.options.codex_command then
    env.CODEX_SESSIONS_CODEX = shell_join(config.options.codex_command)
  end
  if check_sidecar(config, env) then
    check_doctor(config, next(env) and env or nil)
  end
end

return M
