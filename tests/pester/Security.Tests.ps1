#Requires -Version 7.0
# Security end to end: another local user cannot drive the host or a Node primary (peer credentials, the
# primary's token, owner-only sockets in owner-only folders, also with a long CLUSTER_HOME under umask 000), the
# host refuses a CLUSTER_HOME it cannot trust (another owner, a symlinked log, a group-writable state file), and
# idle connections cost memory that goes back. Real host, real Node apps on 127.0.0.1. The tests that need a
# second user create one with useradd, so they run on Linux as root only (as CI does).

BeforeDiscovery {
    $script:CanAddUser = $IsLinux -and ((& id -u) -eq '0') -and [bool](Get-Command useradd, runuser -ErrorAction SilentlyContinue)
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/resilience')).Path
    $script:Homes = [System.Collections.Generic.List[string]]::new()
    $script:Stranger = 'clsec' + [guid]::NewGuid().ToString('n').Substring(0, 6)
    $script:Marker = "/tmp/$Stranger-ran"
    $script:Exploit = '{"cmd":"fork","key":"x","mode":"fork","exec":"/bin/sh","args":["-c","id>' + $Marker + '"],"env":{},"instance":0}'
    if ($IsLinux -and ((& id -u) -eq '0')) {
        & useradd --no-create-home --shell /usr/sbin/nologin $Stranger
        if ($LASTEXITCODE) { throw "useradd $Stranger failed" }
        $script:StrangerUid = [int](& id -u $Stranger)
    }

    function New-Home([string] $Path) {
        if (-not $Path) { $Path = Join-Path ([IO.Path]::GetTempPath()) ('cl-' + [guid]::NewGuid().ToString('n').Substring(0, 10)) }
        $Homes.Add($Path)
        $env:CLUSTER_HOME = $Path
        $Path
    }

    # Connects to a Unix socket as the other user, sends one line, and says what happened: 'error <code>' when
    # the connection could not be made, else 'connected' and then 'closed' if the other side closed it.
    function Invoke-AsStranger([string] $Socket, [string] $Line) {
        $script = @'
const [socketPath, line] = process.argv.slice(1);
const s = require('net').connect(socketPath);
s.on('connect', () => { console.log('connected'); s.write(line + '\n'); });
s.on('data', (d) => console.log('data ' + d.toString().trim()));
s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
s.on('close', () => { console.log('closed'); process.exit(0); });
setTimeout(() => process.exit(0), 8000);
'@
        & runuser -u $Stranger -- node -e $script $Socket $Line
    }

    function Get-PrimarySocket {
        $marker = Get-ChildItem (Join-Path $env:CLUSTER_HOME 'primaries') -Filter *.primary | Select-Object -First 1
        (Get-Content -Raw $marker.FullName).Trim()
    }

    function Get-HostLog { Get-Content -Raw (Join-Path $env:CLUSTER_HOME 'logs/host.log') }

    function Get-Rss([int] $Id) {
        $line = (Get-Content "/proc/$Id/status") -match '^VmRSS:'
        [long](($line -split '\s+')[1]) * 1KB
    }

    function Start-TestApp([string] $Name) {
        $port = Get-FreePort
        $null = Start-ClusterApp -Path (Join-Path $Fixtures 'server.js') -Name $Name -Instances 1 -Environment @{ PORT = "$port" } -ErrorAction Stop
        $port
    }
}

AfterAll {
    foreach ($path in $Homes) { Remove-TestClusterHome -Path $path }
    if ($Stranger -and $IsLinux -and ((& id -u) -eq '0')) { & userdel $Stranger 2>$null }
    Remove-Item -Force $Marker -ErrorAction SilentlyContinue
}

Describe 'Another user cannot reach the host or a primary' -Skip:(-not $CanAddUser) {
    # Skip reason: needs Linux and root (useradd, runuser) to act as a second local user.

    It 'With a long CLUSTER_HOME under umask 000, sockets are owner-only in a private folder and refuse the exploit' {
        $long = New-Home (Join-Path ([IO.Path]::GetTempPath()) ('cl-' + [guid]::NewGuid().ToString('n').Substring(0, 8) + '/' + ('a' * 100)))
        # The host inherits the umask of the session that starts it.
        Add-Type -Namespace ClusterSecurityTests -Name Libc -MemberDefinition '[DllImport("libc")] public static extern int umask(int mask);'
        $umask = [ClusterSecurityTests.Libc]::umask(0)
        try { $port = Start-TestApp -Name longhome } finally { $null = [ClusterSecurityTests.Libc]::umask($umask) }
        Invoke-TestRequest -Port $port | Should -Not -BeNullOrEmpty

        $folder = (Get-Content -Raw (Join-Path $long 'socket-folder')).Trim()
        $folder | Should -Not -BeLike "$long*"
        (& stat -c '%a %u' $folder) | Should -Be '700 0'
        (& stat -c '%a' $long) | Should -Be '700'
        $hostSocket = Join-Path $folder 'host.sock'
        $primarySocket = Get-PrimarySocket
        $primarySocket | Should -BeLike "$folder/*"
        (& stat -c '%a' $hostSocket) | Should -Be '600'
        (& stat -c '%a' $primarySocket) | Should -BeIn '600', '700' # owner only (Node gives sockets 0777 less the umask)

        Invoke-AsStranger $hostSocket '{"command":"list"}' | Should -Be 'error EACCES'
        Invoke-AsStranger $primarySocket $Exploit | Should -Be 'error EACCES'
        Test-Path $Marker | Should -BeFalse

        # The host still manages the primary.
        $before = (Get-ClusterApp longhome).Instances[0].Pid
        Restart-ClusterApp longhome -Confirm:$false -ErrorAction Stop
        Wait-Until { (Get-ClusterApp longhome).Instances[0].Pid -notin @($null, $before) } -Because 'the instance is restarted'
        Remove-TestClusterHome -Path $long
        Remove-Item -Recurse -Force $folder -ErrorAction SilentlyContinue
    }

    It 'A connection from another user that reaches the host socket is refused by its peer credentials and logged' {
        New-Home | Out-Null
        $null = Get-ClusterApp
        $endpoint = (Get-ClusterHost).Endpoint
        # Opened up on purpose, so that only the host's own check stands between the other user and the host.
        & chmod 711 $env:CLUSTER_HOME
        & chmod 666 $endpoint
        $said = Invoke-AsStranger $endpoint '{"command":"list"}'
        $said | Should -Not -Contain 'error EACCES'
        ($said | Where-Object { $_ -like 'data *' }) | Should -BeNullOrEmpty
        Wait-Until { (Get-HostLog) -match "Refused a connection from another user: .*user id $StrangerUid" } -Because 'the host logs the refusal'
        Get-ClusterHost | Should -Not -BeNullOrEmpty
    }

    It 'A primary refuses a connection without its token, from another user or from the owner, and keeps its host' {
        New-Home | Out-Null
        $port = Start-TestApp -Name tokenapp
        $socket = Get-PrimarySocket
        & chmod 711 $env:CLUSTER_HOME (Join-Path $env:CLUSTER_HOME 'primaries')
        & chmod 666 $socket

        $said = Invoke-AsStranger $socket $Exploit
        $said | Should -Contain 'connected'
        ($said -match '^(closed|error ECONNRESET|error EPIPE)$') | Should -Not -BeNullOrEmpty
        # The owner without the token gets no further.
        & node -e "const s=require('net').connect(process.argv[1]);s.on('connect',()=>s.write(process.argv[2]+'\n'));s.on('error',()=>{});s.on('close',()=>process.exit(0));setTimeout(()=>process.exit(0),8000)" $socket $Exploit
        Start-Sleep -Milliseconds 500
        Test-Path $Marker | Should -BeFalse
        Wait-Until { ([regex]::Matches((Get-HostLog), 'refused a connection: a host is connected already|refused a connection: no valid token')).Count -ge 2 } -Because 'the primary logs both refusals'

        $before = (Get-ClusterApp tokenapp).Instances[0].Pid
        Restart-ClusterApp tokenapp -Confirm:$false -ErrorAction Stop
        Wait-Until { (Get-ClusterApp tokenapp).Instances[0].Pid -notin @($null, $before) } -Because 'the host still drives the primary'
        Invoke-TestRequest -Port $port | Should -Not -BeNullOrEmpty
    }
}

Describe 'The host refuses a CLUSTER_HOME it cannot trust' -Skip:(-not $CanAddUser) {
    # Skip reason: needs Linux and root (useradd, chown to another user).

    It 'Refuses a CLUSTER_HOME owned by another user' {
        $path = New-Home
        New-Item -ItemType Directory $path | Out-Null
        & chmod 700 $path
        & chown $Stranger $path
        $failure = { Get-ClusterApp -ErrorAction Stop } | Should -Throw -PassThru
        $failure.FullyQualifiedErrorId | Should -Be 'GetClusterAppHostUnsafePath,Cluster.Commands.GetClusterAppCommand'
        $failure.CategoryInfo.Category | Should -Be 'SecurityError'
        $failure.TargetObject | Should -Be $path
        $failure.Exception.Message | Should -Match "owned by user id $StrangerUid"
    }

    It 'Refuses a symlinked log file' {
        $path = New-Home
        New-Item -ItemType Directory $path, (Join-Path $path 'logs') | Out-Null
        & chmod 700 $path (Join-Path $path 'logs')
        $link = Join-Path $path 'logs/victim-0.out.log'
        New-Item -ItemType SymbolicLink -Path $link -Target "/tmp/$Stranger-target" | Out-Null
        $failure = { Get-ClusterApp -ErrorAction Stop } | Should -Throw -PassThru
        $failure.FullyQualifiedErrorId | Should -Be 'GetClusterAppHostUnsafePath,Cluster.Commands.GetClusterAppCommand'
        $failure.TargetObject | Should -Be $link
        $failure.Exception.Message | Should -Match 'symbolic link'
    }

    It 'Refuses a group-writable state file' {
        $path = New-Home
        New-Item -ItemType Directory $path | Out-Null
        & chmod 700 $path
        $state = Join-Path $path 'state.json'
        Set-Content -Path $state -Value '{"apps":[]}'
        & chmod 664 $state
        $failure = { Get-ClusterApp -ErrorAction Stop } | Should -Throw -PassThru
        $failure.FullyQualifiedErrorId | Should -Be 'GetClusterAppHostUnsafePath,Cluster.Commands.GetClusterAppCommand'
        $failure.TargetObject | Should -Be $state
        $failure.Exception.Message | Should -Match 'can be written by other users'
    }

    It 'Creates a new CLUSTER_HOME owner only, and never changes the mode of one it did not create' {
        $path = New-Home
        $null = Get-ClusterApp
        (& stat -c '%a' $path) | Should -Be '700'
        Stop-ClusterHost -Confirm:$false
        & chmod 750 $path
        $null = Get-ClusterApp
        (& stat -c '%a' $path) | Should -Be '750'
        (Get-HostLog) | Should -Match 'can be read by other users'
    }
}

Describe 'Idle connections' -Skip:(-not $IsLinux) {
    # Skip reason: reads the host's memory from /proc.

    It 'Ten thousand idle connections, once closed, leave the host near the memory it started with' {
        New-Home | Out-Null
        $null = Get-ClusterApp
        $info = Get-ClusterHost
        Start-Sleep -Seconds 1
        $before = Get-Rss $info.Pid
        $script = @'
const [socketPath] = process.argv.slice(1);
const net = require('net');
const sockets = [];
let settled = 0, connected = 0;
const done = () => { if (++settled === 10000) { console.log(`connected ${connected}`); setTimeout(() => { for (const s of sockets) s.destroy(); setTimeout(() => process.exit(0), 500); }, 2000); } };
for (let i = 0; i < 10000; i++) {
  const s = net.connect(socketPath);
  s.on('connect', () => { connected++; done(); });
  s.on('error', () => done());
  sockets.push(s);
}
setTimeout(() => { console.log('timeout'); process.exit(1); }, 60000);
'@
        $said = & node -e $script $info.Endpoint
        $said | Should -Match '^connected \d+'
        [int]($said -replace '\D') | Should -BeGreaterThan 1000
        # Served and closed: the host answers again, and its memory went back.
        Wait-Until { [bool](Get-ClusterHost -ErrorAction SilentlyContinue) } -TimeoutSeconds 60 -Because 'the host answers after the idle connections closed'
        $after = Get-Rss $info.Pid
        ($after - $before) | Should -BeLessThan 15MB
    }
}
