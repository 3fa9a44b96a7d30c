# Shared by the end-to-end suites: each test file runs against its own CLUSTER_HOME and host, with the
# module built by build.ps1 (CLUSTER_MODULE_PATH), and leaves no process behind.

function Import-ClusterModule {
    if (-not $env:CLUSTER_MODULE_PATH) {
        $env:CLUSTER_MODULE_PATH = Join-Path $PSScriptRoot '../../out/Cluster/Cluster.psd1' | Resolve-Path
    }
    Import-Module $env:CLUSTER_MODULE_PATH -Force -Global
}

function New-TestClusterHome {
    # Short, so the host's Unix socket path stays well within its limit.
    $path = Join-Path ([IO.Path]::GetTempPath()) ('cl-' + [guid]::NewGuid().ToString('n').Substring(0, 10))
    New-Item -ItemType Directory -Path $path | Out-Null
    $env:CLUSTER_HOME = $path
    $path
}

function Remove-TestClusterHome {
    param([string] $Path = $env:CLUSTER_HOME)
    $hostPid = Get-Content -Path (Join-Path $Path 'host.pid') -ErrorAction SilentlyContinue | Select-Object -First 1
    Stop-ClusterHost -Confirm:$false -ErrorAction SilentlyContinue
    # Should the host not have stopped everything, no process of this CLUSTER_HOME outlives the suite: the host
    # (its pid file says which it is) and the Node primaries name it on their command lines, and cluster workers
    # exit with their primary.
    if ($hostPid -match '^\d+$' -and (Get-Process -Id $hostPid -ErrorAction SilentlyContinue)) { Stop-Process -Id $hostPid -Force -ErrorAction SilentlyContinue }
    Get-ClusterHomeProcessId -Path $Path | ForEach-Object { Stop-Process -Id $_ -Force -ErrorAction SilentlyContinue }
    Remove-Item -Recurse -Force $Path -ErrorAction SilentlyContinue
}

function Get-ClusterHomeProcessId {
    param([Parameter(Mandatory)] [string] $Path)
    if (-not $IsLinux) { return }
    foreach ($folder in Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -Match '^\d+$') {
        $commandLine = try { [IO.File]::ReadAllText("$($folder.FullName)/cmdline") } catch { '' }
        if ($commandLine.Contains($Path) -and [int] $folder.Name -ne $PID) { [int] $folder.Name }
    }
}

function Get-FreePort {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $listener.Start()
    try { $listener.LocalEndpoint.Port } finally { $listener.Stop() }
}

function Wait-Until {
    param(
        [Parameter(Mandatory)] [scriptblock] $Condition,
        [int] $TimeoutSeconds = 20,
        [string] $Because = 'the condition to hold'
    )
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        if (& $Condition) { return }
        Start-Sleep -Milliseconds 100
    }
    throw "Timed out after $TimeoutSeconds s waiting for $Because."
}

function Invoke-TestRequest {
    param([Parameter(Mandatory)] [int] $Port, [string] $Path = '/')
    Invoke-RestMethod -Uri "http://127.0.0.1:$Port$Path" -DisableKeepAlive -TimeoutSec 10
}

# Starts a fixture app on a free port (passed as PORT) and returns the app, Online, with its port as a note
# property. -Script is a path, or a file name in -Fixtures; a suite sets the folder once:
#   $script:PSDefaultParameterValues = @{ 'Start-TestApp:Fixtures' = $Fixtures }
function Start-TestApp {
    param(
        [Parameter(Mandatory)] [string] $Script,
        [Parameter(Mandatory)] [string] $Name,
        [string] $Fixtures,
        [int] $Instances = 2,
        [hashtable] $Environment = @{},
        [hashtable] $StartParameters = @{}
    )
    $path = if ($Fixtures -and -not [IO.Path]::IsPathRooted($Script)) { Join-Path $Fixtures $Script } else { $Script }
    $port = Get-FreePort
    $app = Start-ClusterApp -Path $path -Name $Name -Instances $Instances -Environment (@{ PORT = "$port" } + $Environment) @StartParameters -ErrorAction Stop
    if ("$($app.Status)" -ne 'Online') {
        throw "The fixture app '$Name' is $($app.Status) after Start-ClusterApp; a test needs it Online."
    }
    $app | Add-Member -NotePropertyName Port -NotePropertyValue $port -PassThru
}

# Runs tests/fixtures/reload/load.js (a bounded HTTP client: at most -MaxSeconds) against 127.0.0.1:<Port> until
# Stop-LoadClient; returns once it has had its first answers.
function Start-LoadClient {
    param(
        [Parameter(Mandatory)] [int] $Port,
        [ValidateSet('keep-alive', 'close')] [string] $Connection = 'keep-alive',
        [int] $Concurrency = 8,
        [int] $MaxSeconds = 30,
        [int] $ReadyAfter = 50,
        [string] $Folder = $env:CLUSTER_HOME
    )
    $script = Join-Path $PSScriptRoot '../fixtures/reload/load.js'
    $arguments = @('--port', $Port, '--connection', $Connection, '--concurrency', $Concurrency, '--ready-after', $ReadyAfter, '--max-seconds', $MaxSeconds)
    $client = Start-NodeClient -Script $script -Arguments $arguments -Folder $Folder -What 'load client'
    $client | Add-Member -NotePropertyName Port -NotePropertyValue $Port -PassThru
}

# Stops a load client and returns its result: @{ ok; failed; errors = @{ code = n }; pids = @{ pid = n } }.
function Stop-LoadClient {
    param([Parameter(Mandatory)] $Client)
    Stop-NodeClient -Client $Client -What 'load client' -TimeoutSeconds 40
}

# Runs a Node client script of the fixtures with --stop and --ready files of its own (in a new folder under
# -Folder) until Stop-NodeClient; returns once the client has made its ready file.
function Start-NodeClient {
    param(
        [Parameter(Mandatory)] [string] $Script,
        [object[]] $Arguments = @(),
        [Parameter(Mandatory)] [string] $Folder,
        [string] $What = 'client'
    )
    $node = (Get-Command -Name node -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
    $work = Join-Path $Folder ('client-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
    New-Item -ItemType Directory -Path $work | Out-Null
    $client = [pscustomobject]@{
        Stop    = Join-Path $work 'stop'
        Ready   = Join-Path $work 'ready'
        Output  = Join-Path $work 'result.json'
        Errors  = Join-Path $work 'stderr.txt'
        Process = $null
    }
    $all = @($Script) + $Arguments + @('--stop', $client.Stop, '--ready', $client.Ready) |
        ForEach-Object { if ("$_" -match '\s') { '"' + $_ + '"' } else { "$_" } } # Start-Process joins them as they are
    $client.Process = Start-Process -FilePath $node -ArgumentList $all -RedirectStandardOutput $client.Output -RedirectStandardError $client.Errors -PassThru
    Wait-Until { (Test-Path $client.Ready) -or $client.Process.HasExited } -Because "the $What to get its first answers"
    if (-not (Test-Path $client.Ready)) {
        throw "The $What exited before it got its first answers: $(Get-Content -Raw $client.Errors)"
    }
    $client
}

# Stops a client of Start-NodeClient and returns the JSON result it wrote, as a hashtable.
function Stop-NodeClient {
    param([Parameter(Mandatory)] $Client, [string] $What = 'client', [int] $TimeoutSeconds = 30)
    New-Item -ItemType File -Path $Client.Stop -Force | Out-Null
    if (-not $Client.Process.WaitForExit($TimeoutSeconds * 1000)) {
        Stop-Process -Id $Client.Process.Id -Force -ErrorAction SilentlyContinue
        throw "The $What did not stop when asked."
    }
    $Client.Process.WaitForExit() # and for its redirected output to be written
    $json = Get-Content -Raw -Path $Client.Output -ErrorAction SilentlyContinue
    if (-not $json) {
        throw "The $What wrote no result (exit code $($Client.Process.ExitCode)): $(Get-Content -Raw $Client.Errors)"
    }
    $json | ConvertFrom-Json -AsHashtable
}

# Starts a child 'pwsh -NoProfile' running the command, with this session's environment (CLUSTER_HOME,
# CLUSTER_MODULE_PATH), and returns its process. Under 'dotnet pwsh' this process is dotnet itself.
function Start-ChildPwsh {
    param([Parameter(Mandatory)] [string] $Command, [Parameter(Mandatory)] [string] $OutputPath)
    $path = [Environment]::ProcessPath
    $arguments = @(if ([IO.Path]::GetFileNameWithoutExtension($path) -ne 'pwsh') { Join-Path $PSHOME 'pwsh.dll' })
    $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($Command))
    $arguments += '-NoProfile', '-NonInteractive', '-EncodedCommand', $encoded
    Start-Process -FilePath $path -ArgumentList $arguments -RedirectStandardOutput $OutputPath -RedirectStandardError "$OutputPath.err" -PassThru
}

function Test-ProcessAlive {
    param([Parameter(Mandatory)] [int] $Id)
    [bool](Get-Process -Id $Id -ErrorAction SilentlyContinue)
}

# Whether a process runs. On Linux a zombie (killed, and not yet reaped by whoever inherited it) does not count.
function Test-ProcessRunning {
    param([Parameter(Mandatory)] [int] $Id)
    if (-not $IsLinux) { return Test-ProcessAlive -Id $Id }
    $stat = try { [IO.File]::ReadAllText("/proc/$Id/stat") } catch { return $false }
    # pid (comm) state ...: the name may hold spaces and parentheses, the state follows the last ')'.
    $state = $stat.Substring($stat.LastIndexOf(')') + 2, 1)
    $state -notin 'Z', 'X'
}

# The process group of a process (Linux).
function Get-ProcessGroupId {
    param([Parameter(Mandatory)] [int] $Id)
    $stat = [IO.File]::ReadAllText("/proc/$Id/stat")
    [int] ($stat.Substring($stat.LastIndexOf(')') + 2) -split ' ')[2]
}

# The parent of a process (Linux).
function Get-ParentProcessId {
    param([Parameter(Mandatory)] [int] $Id)
    $stat = [IO.File]::ReadAllText("/proc/$Id/stat")
    [int] ($stat.Substring($stat.LastIndexOf(')') + 2) -split ' ')[1]
}

# Starts a fixture app on a free port (passed as PORT, unless Environment sets PORT itself, $null removing it) and
# returns the app with its port as a note property.
function Start-FixtureApp {
    param(
        [Parameter(Mandatory)] [string] $Path,
        [Parameter(Mandatory)] [string] $Name,
        [int] $Instances = 2,
        [hashtable] $Environment = @{},
        [hashtable] $StartParameters = @{}
    )
    $port = Get-FreePort
    $appEnvironment = @{ PORT = "$port" }
    foreach ($key in $Environment.Keys) { $appEnvironment[$key] = $Environment[$key] }
    $app = Start-ClusterApp -Path $Path -Name $Name -Instances $Instances -Environment $appEnvironment @StartParameters -ErrorAction Stop
    $app | Add-Member -NotePropertyName Port -NotePropertyValue $port -PassThru
}

# Requests, a new connection each, until every expected pid has answered (at most MaxRequests); returns the pids seen.
function Get-AnsweringPid {
    param([Parameter(Mandatory)] [int] $Port, [Parameter(Mandatory)] [int[]] $ExpectedPid, [int] $MaxRequests = 60)
    $seen = [System.Collections.Generic.HashSet[int]]::new()
    for ($i = 0; $i -lt $MaxRequests -and @($ExpectedPid | Where-Object { -not $seen.Contains($_) }).Count -gt 0; $i++) {
        $null = $seen.Add([int] (Invoke-TestRequest -Port $Port).pid)
    }
    @($seen | Sort-Object)
}

# The error a command throws (run it with -ErrorAction Stop); fails when it succeeds.
function Get-ThrownError {
    param([Parameter(Mandatory)] [scriptblock] $Command)
    try {
        & $Command
    }
    catch {
        return $_
    }
    throw 'The command was expected to fail, and it succeeded.'
}

# How to start a fresh pwsh like this one: under 'dotnet pwsh' the process is dotnet, and the child is
# 'dotnet <PSHOME>/pwsh.dll'. Returns the program and the arguments that come before pwsh's own.
function Get-PwshCommandLine {
    $path = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($path) -eq 'pwsh') { return @($path) }
    @($path, (Join-Path $PSHOME 'pwsh.dll'))
}

# Writes one line of text (a newline is added) straight to the host's control socket with
# tests/fixtures/resilience/raw-client.js, bypassing every check of the cmdlets; returns what the client saw
# ({connected, frames, closedByHost, timedOut, ...}).
function Send-RawClusterRequest {
    param([Parameter(Mandatory)] [string] $Endpoint, [Parameter(Mandatory)] [string] $Text, [int] $TimeoutMs = 15000)
    $node = (Get-Command -Name node -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
    $client = Join-Path $PSScriptRoot '../fixtures/resilience/raw-client.js'
    $payload = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($Text + "`n"))
    $output = & $node $client $Endpoint base64 $payload $TimeoutMs
    if ($LASTEXITCODE -ne 0 -or -not $output) { throw "The raw client failed (exit code $LASTEXITCODE)." }
    $output | Select-Object -Last 1 | ConvertFrom-Json -AsHashtable
}

# The texts of the lines of instance log files, without the stamp the Node primary begins each with
# ("2026-01-02T03:04:05.678Z <pid> "). Missing files give nothing.
function Get-LogText {
    param([Parameter(Mandatory)] [string[]] $Path)
    foreach ($line in Get-Content -Path $Path -ErrorAction SilentlyContinue) {
        $line -replace '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \d+ ', ''
    }
}

# The "What if:" lines a command writes under -WhatIf: ShouldProcess writes them to the host, not to a stream, so
# they are read back from a transcript.
function Get-WhatIfText {
    param([Parameter(Mandatory)] [scriptblock] $Command)
    $transcript = Join-Path ([IO.Path]::GetTempPath()) "whatif-$([guid]::NewGuid()).txt"
    try {
        Start-Transcript -Path $transcript -UseMinimalHeader | Out-Null
        try { & $Command | Out-Null } finally { Stop-Transcript | Out-Null }
        @(Get-Content -Path $transcript | Where-Object { $_ -like 'What if:*' })
    }
    finally {
        Remove-Item -Path $transcript -ErrorAction SilentlyContinue
    }
}

# An interactive pwsh in a tmux terminal, for what only a terminal does (a real Ctrl+C): a tmux server on a socket
# of its own, so that nothing else of the user's is touched. The pwsh gets CLUSTER_HOME and CLUSTER_MODULE_PATH of
# this session (and -Environment), imports the module, and has shown its prompt when this returns.
function Start-TestTerminal {
    param([Parameter(Mandatory)] [string] $Name, [hashtable] $Environment = @{})
    $tmux = (Get-Command -Name tmux -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1).Source
    if (-not $tmux) { throw 'This test drives pwsh in a tmux terminal: install tmux (apt-get install -y tmux; .ci/run does).' }
    $terminal = [pscustomobject]@{ Tmux = $tmux; Socket = 'cluster-test-' + [guid]::NewGuid().ToString('n').Substring(0, 8); Name = $Name }
    $variables = @{ CLUSTER_HOME = $env:CLUSTER_HOME; CLUSTER_MODULE_PATH = $env:CLUSTER_MODULE_PATH; NO_COLOR = '1'; TERM = 'xterm' } + $Environment
    $pwsh = @(Get-PwshCommandLine) + @('-NoProfile', '-NoLogo', '-NoExit', '-Command', 'Import-Module $env:CLUSTER_MODULE_PATH')
    $command = @('env') + @($variables.Keys | ForEach-Object { "$_=$($variables[$_])" }) + $pwsh |
        ForEach-Object { "'" + ($_ -replace "'", "'\''") + "'" }
    Invoke-TestTerminal $terminal new-session -d -s $Name -x 250 -y 50 ($command -join ' ') | Out-Null
    Wait-Until { (Get-TestTerminalScreen $terminal) -match '(?m)^PS .*>' } -TimeoutSeconds 30 -Because 'pwsh in tmux to show its prompt'
    $terminal
}

# Runs tmux against the terminal's own server: Invoke-TestTerminal <terminal> <tmux arguments>. A plain function, so
# that its arguments go to tmux as they are (-d is not -Debug).
function Invoke-TestTerminal {
    $Terminal, $Arguments = $args
    $output = & $Terminal.Tmux -L $Terminal.Socket @Arguments 2>&1
    if ($LASTEXITCODE) { throw "tmux $($Arguments -join ' ') failed: $output" }
    $output
}

# Types a line (Enter after it), or sends keys as tmux names them (C-c) with -Keys.
function Send-TestTerminal {
    param([Parameter(Mandatory)] $Terminal, [string] $Line, [string[]] $Keys)
    if ($Line) { Invoke-TestTerminal $Terminal send-keys -t $Terminal.Name $Line Enter | Out-Null }
    if ($Keys) { Invoke-TestTerminal $Terminal send-keys -t $Terminal.Name @Keys | Out-Null }
}

# What the terminal shows, the scrollback included, with wrapped lines joined.
function Get-TestTerminalScreen {
    param([Parameter(Mandatory)] $Terminal)
    (Invoke-TestTerminal $Terminal capture-pane -p -J -S - -t $Terminal.Name) -join "`n"
}

function Stop-TestTerminal {
    param($Terminal)
    if ($Terminal) { & $Terminal.Tmux -L $Terminal.Socket kill-server 2>$null }
}

Export-ModuleMember -Function Start-TestTerminal, Send-TestTerminal, Get-TestTerminalScreen, Stop-TestTerminal, Start-NodeClient, Stop-NodeClient, Get-LogText, Import-ClusterModule, New-TestClusterHome, Remove-TestClusterHome, Get-FreePort, Wait-Until, Invoke-TestRequest, Test-ProcessAlive, Send-RawClusterRequest,
    Test-ProcessRunning, Get-ProcessGroupId, Get-ParentProcessId, Start-FixtureApp, Get-ThrownError, Get-PwshCommandLine,
    Start-TestApp, Start-LoadClient, Stop-LoadClient, Start-ChildPwsh, Get-AnsweringPid, Get-WhatIfText
