--- :checkhealth codex_sessions — Neovim, the options, the sidecar command and its
--- daemon, the Codex binary and its login, the state folder; each checked here (exit
--- codes and JSON, not another program's prose), with advice when it fails.
local M = {}

local health = vim.health

local function run(argv, env, timeout)
  local ok, result = pcall(function()
    return vim.system(argv, { env = env, text = true }):wait(timeout or 20000)
  end)
  if not ok then
    return { code = 127, stdout = "", stderr = tostring(result) }
  end
  return result
end

--- The lines of a program's output that are its answer, not warnings on the way.
local function meaningful(text)
  local out = {}
  for _, line in ipairs(vim.split(text or "", "\n", { trimempty = true })) do
    line = vim.trim(line:gsub("\27%[[%d;]*m", ""))
    if line ~= "" and not line:match("^WARNING") and not line:match("^%S+%s+WARN%s") and not line:match("^%d%d%d%d%-%d%d%-%d%dT") then
      table.insert(out, line)
    end
  end
  return out
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

--- The sidecar command with `serve` replaced by other arguments, or nil.
local function cli(cmd, ...)
  if cmd[#cmd] ~= "serve" then
    return nil
  end
  local argv = vim.list_slice(cmd, 1, #cmd - 1)
  vim.list_extend(argv, { ... })
  return argv
end

local function check_sidecar(config, env)
  health.start("Sidecar and daemon")
  local cmd = config.options.cmd
  local exe = vim.fn.exepath(cmd[1])
  if exe == "" then
    health.error(string.format("sidecar command `%s` not found", table.concat(cmd, " ")), {
      "install it from the codex-sessions repository: pipx install /path/to/codex-sessions (or pip install . in a virtualenv), then restart Neovim",
      "or point the `cmd` option at it, e.g. cmd = { '/path/to/venv/bin/codex-sessions', 'serve' }",
    })
    return nil
  end
  health.ok(string.format("sidecar command: %s (%s)", table.concat(cmd, " "), exe))
  local argv = cli(cmd, "daemon", "status", "--json")
  if not argv then
    health.info("the sidecar command does not end in `serve`: the daemon is not checked")
    return nil
  end
  local result = run(argv, env)
  local ok, status = pcall(vim.json.decode, result.stdout or "")
  if not ok or type(status) ~= "table" then
    health.error("`" .. table.concat(argv, " ") .. "` failed (exit " .. tostring(result.code) .. ")",
      vim.list_slice(meaningful(result.stderr), 1, 3))
    return nil
  end
  if status.running then
    health.ok(string.format("daemon running: pid %s, version %s, %s live session(s), %s other client(s); log %s",
      tostring(status.pid), tostring(status.version), tostring(status.liveSessions),
      tostring(math.max((tonumber(status.clients) or 1) - 1, 0)), tostring(status.log)))
  else
    health.info("daemon not running; the first :CodexSessions command starts it")
  end
  local rpc = require("codex_sessions.rpc")
  local info = rpc.info()
  if info.running and info.server then
    health.ok(string.format("this Neovim is connected (%s %s)", tostring(info.server.name), tostring(info.server.version)))
  else
    health.info("this Neovim is not connected yet")
  end
  return status
end

--- The Codex command the daemon will run for this Neovim: `codex_command`,
--- else $CODEX_SESSIONS_CODEX (a shell command line), else `codex`.
local function codex_argv(config, env)
  if config.options.codex_command then
    return vim.deepcopy(config.options.codex_command)
  end
  local line = (env and env.CODEX_SESSIONS_CODEX) or vim.env.CODEX_SESSIONS_CODEX
  if not line or line == "" then
    return { "codex" }
  end
  -- the shell splits it, as the sidecar's shlex.split does
  local result = run({ "sh", "-c", 'eval "set -- $CODEX_SESSIONS_CODEX"; for a; do printf "%s\\0" "$a"; done' },
    { CODEX_SESSIONS_CODEX = line })
  local argv = vim.split(result.stdout or "", "\0", { trimempty = true })
  return #argv > 0 and argv or { "codex" }
end

local CODEX_ADVICE = {
  "install Codex: npm install -g @openai/codex",
  "or set the `codex_command` option (or $CODEX_SESSIONS_CODEX) to the Codex you use",
}

local function check_codex(config, env)
  health.start("Codex")
  local argv = codex_argv(config, env)
  local exe = vim.fn.exepath(argv[1])
  if exe == "" then
    health.error(string.format("Codex: '%s' not found", argv[1]), CODEX_ADVICE)
    return
  end
  local version = run(vim.list_extend(vim.deepcopy(argv), { "--version" }), env)
  local said = meaningful((version.stdout or "") .. "\n" .. (version.stderr or ""))
  if version.code ~= 0 then
    health.error(string.format("Codex: %s --version failed (exit %d)%s", exe, version.code,
      said[1] and (": " .. said[1]) or ""), { "check that this binary runs: " .. table.concat(argv, " ") .. " --version" })
    return
  end
  health.ok(string.format("Codex: %s (%s)", exe, said[1] or "?"))
  local login = run(vim.list_extend(vim.deepcopy(argv), { "login", "status" }), env)
  local lines = meaningful((login.stdout or "") .. "\n" .. (login.stderr or ""))
  local answer = lines[#lines] or ("exit " .. tostring(login.code))
  for _, line in ipairs(lines) do
    if line:lower():find("log") then
      answer = line
    end
  end
  if login.code == 0 then
    health.ok("Codex login: " .. answer)
  else
    health.warn("Codex login: " .. answer, {
      "run `codex login`, or configure a model provider with an API key (a custom provider needs no login)",
    })
  end
end

local function check_state(status)
  health.start("State folder")
  local dir = status and status.stateDir
  if not dir then
    health.info("not checked (the daemon's status was not available)")
    return
  end
  -- the folder, or the nearest existing folder above it, must be writable
  local path = dir
  while vim.uv.fs_stat(path) == nil and path ~= "/" do
    path = vim.fn.fnamemodify(path, ":h")
  end
  local stat = vim.uv.fs_stat(path)
  local advice = { "set the `state_dir` option (or $CODEX_SESSIONS_STATE_DIR) to a writable folder" }
  if not stat or stat.type ~= "directory" then
    health.error(string.format("state: %s cannot be created (%s is not a folder)", dir, path), advice)
  elseif vim.fn.filewritable(path) ~= 2 then
    health.error(string.format("state: %s is not writable", path), advice)
  else
    health.ok("state: " .. dir)
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
  env = next(env) and env or nil
  local status = check_sidecar(config, env)
  check_codex(config, env)
  check_state(status)
end

return M
