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

Export-ModuleMember -Function Import-ClusterModule, New-TestClusterHome, Remove-TestClusterHome, Get-FreePort, Wait-Until, Invoke-TestRequest, Test-ProcessAlive,
    Test-ProcessRunning, Get-ProcessGroupId, Get-ParentProcessId, Start-FixtureApp, Get-ThrownError, Get-PwshCommandLine
