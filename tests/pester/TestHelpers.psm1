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
    Stop-ClusterHost -Confirm:$false -ErrorAction SilentlyContinue
    # Should the host not have stopped everything, no process of this CLUSTER_HOME outlives the suite: the host
    # and the Node primaries name it on their command lines, and cluster workers exit with their primary.
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
    $node = (Get-Command -Name node -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
    $work = Join-Path $Folder ('load-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
    New-Item -ItemType Directory -Path $work | Out-Null
    $client = [pscustomobject]@{
        Port    = $Port
        Stop    = Join-Path $work 'stop'
        Ready   = Join-Path $work 'ready'
        Output  = Join-Path $work 'result.json'
        Errors  = Join-Path $work 'stderr.txt'
        Process = $null
    }
    $arguments = @(
        (Join-Path $PSScriptRoot '../fixtures/reload/load.js'), '--port', $Port, '--connection', $Connection, '--concurrency', $Concurrency,
        '--stop', $client.Stop, '--ready', $client.Ready, '--ready-after', $ReadyAfter, '--max-seconds', $MaxSeconds
    ) | ForEach-Object { if ("$_" -match '\s') { '"' + $_ + '"' } else { "$_" } } # Start-Process joins them as they are
    $client.Process = Start-Process -FilePath $node -ArgumentList $arguments -RedirectStandardOutput $client.Output -RedirectStandardError $client.Errors -PassThru
    Wait-Until { (Test-Path $client.Ready) -or $client.Process.HasExited } -Because 'the load client to get its first answers'
    if (-not (Test-Path $client.Ready)) {
        throw "The load client exited before it got its first answers: $(Get-Content -Raw $client.Errors)"
    }
    $client
}

# Stops a load client and returns its result: @{ ok; failed; errors = @{ code = n }; pids = @{ pid = n } }.
function Stop-LoadClient {
    param([Parameter(Mandatory)] $Client)
    New-Item -ItemType File -Path $Client.Stop -Force | Out-Null
    if (-not $Client.Process.WaitForExit(40000)) {
        Stop-Process -Id $Client.Process.Id -Force -ErrorAction SilentlyContinue
        throw 'The load client did not stop when asked.'
    }
    $json = Get-Content -Raw -Path $Client.Output -ErrorAction SilentlyContinue
    if (-not $json) {
        throw "The load client wrote no result: $(Get-Content -Raw $Client.Errors)"
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

Export-ModuleMember -Function Import-ClusterModule, New-TestClusterHome, Remove-TestClusterHome, Get-FreePort, Wait-Until, Invoke-TestRequest, Test-ProcessAlive,
    Start-TestApp, Start-LoadClient, Stop-LoadClient, Start-ChildPwsh
