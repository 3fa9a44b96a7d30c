#Requires -Version 7.0
# The control endpoint under hostile input: a raw client (tests/fixtures/resilience/raw-client.js) writes bytes
# straight to the host's Unix socket. Each bad request must get its error frame (an oversized one too, before the
# host closes the connection), and right after it the same host must still answer, with an app started before it
# untouched.
# Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/resilience')).Path
    $script:ServerScript = Join-Path $Fixtures 'server.js'
    $script:RawClient = Join-Path $Fixtures 'raw-client.js'
    $script:Node = (Get-Command -Name node -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source

    $script:SteadyPort = Get-FreePort
    $steady = Start-ClusterApp $ServerScript -Name steady -Instances 2 -Environment @{ PORT = "$SteadyPort" } -ErrorAction Stop
    $script:SteadyPids = @($steady.Instances | Sort-Object Instance | ForEach-Object Pid)
    $clusterHost = Get-ClusterHost
    $script:HostPid = $clusterHost.Pid
    $script:Endpoint = $clusterHost.Endpoint

    # Sends the text (a newline is added unless -NoNewline) as raw bytes; returns what the client saw.
    function Send-RawRequest {
        param([Parameter(Mandatory)] [AllowEmptyString()] [string] $Text, [switch] $NoNewline)
        $payload = if ($NoNewline) { $Text } else { $Text + "`n" }
        Send-RawBytes ([Text.Encoding]::UTF8.GetBytes($payload))
    }

    function Send-RawBytes([byte[]] $Bytes) {
        Invoke-RawClient @('base64', [Convert]::ToBase64String($Bytes))
    }

    function Invoke-RawClient([string[]] $Arguments) {
        $output = & $Node $RawClient $Endpoint @Arguments
        $LASTEXITCODE | Should -Be 0 -Because 'the raw client must run to its end'
        $output | Should -Not -BeNullOrEmpty
        $output | Select-Object -Last 1 | ConvertFrom-Json -AsHashtable
    }

    # The one frame of a refusal: done, with an error of the expected code; the host then closes the connection.
    function Assert-Refused {
        param([Parameter(Mandatory)] $Reply, [Parameter(Mandatory)] [string] $Code)
        $Reply.connected | Should -BeTrue
        $Reply.timedOut | Should -BeFalse -Because 'the host answers a bad request instead of waiting'
        $Reply.frames.Count | Should -Be 1 -Because "the reply was: $($Reply | ConvertTo-Json -Depth 5 -Compress)"
        $Reply.frames[0]['done'] | Should -BeTrue
        $Reply.frames[0]['error'] | Should -Not -BeNullOrEmpty
        $Reply.frames[0]['error']['code'] | Should -Be $Code
        $Reply.closedByHost | Should -BeTrue
    }

    # The same host (not a new one started on demand) still answers a normal request, and the app started
    # before the hostile input is online with the same processes, serving HTTP.
    function Assert-HostStillServes {
        (Get-ClusterHost -ErrorAction Stop).Pid | Should -Be $HostPid -Because 'the host must survive the hostile input'
        $app = Get-ClusterApp steady -ErrorAction Stop
        $app.Status | Should -Be 'Online'
        @($app.Instances | Sort-Object Instance | ForEach-Object Pid) | Should -Be $SteadyPids
        (Invoke-TestRequest -Port $SteadyPort).pid | Should -BeIn $SteadyPids
        @(Get-ClusterApp -ErrorAction Stop).Name | Should -Be @('steady') -Because 'no hostile request may leave an app behind'
    }
}

AfterAll {
    Remove-TestClusterHome $TestHome
}

# On Windows the endpoint is a named pipe, which this raw client does not speak.
Describe 'The control endpoint' -Skip:$IsWindows {
    It 'answers a well-formed request written by the raw client' {
        $reply = Send-RawRequest '{"command":"ping"}'

        $reply.connectError | Should -BeNullOrEmpty
        $reply.frames.Count | Should -Be 1
        $reply.frames[0]['done'] | Should -BeTrue
        $reply.frames[0]['error'] | Should -BeNullOrEmpty
        $reply.closedByHost | Should -BeTrue
    }

    It 'refuses malformed JSON (<Case>) with MalformedRequest and keeps serving' -TestCases @(
        @{ Case = 'broken syntax'; Text = '{nope' }
        @{ Case = 'an array'; Text = '[1,2,3]' }
        @{ Case = 'no command'; Text = '{"name":"steady"}' }
        @{ Case = 'bytes that are not UTF-8'; Bytes = [byte[]] @(0xC3, 0x28, 0xFF, 0xFE) + [Text.Encoding]::UTF8.GetBytes('{"command":"list"}' + "`n") }
    ) {
        param($Case, $Text, $Bytes)
        $reply = if ($null -ne $Bytes) { Send-RawBytes $Bytes } else { Send-RawRequest $Text }
        Assert-Refused $reply -Code 'MalformedRequest'
        Assert-HostStillServes
    }

    It 'refuses a 2 MiB frame with FrameTooLarge before it closes the connection, and keeps serving' {
        $reply = Invoke-RawClient @('oversize', "$(2 * 1024 * 1024)")

        Assert-Refused $reply -Code 'FrameTooLarge'
        $reply.frames[0]['error']['category'] | Should -Be 'LimitsExceeded'
        $reply.frames[0]['error']['message'] | Should -BeLike '*larger than 1048576 bytes*'
        # The host reads the rest of the refused frame before it closes, so the client's write is not broken under it.
        $reply.writeError | Should -BeNullOrEmpty
        $reply.readError | Should -BeNullOrEmpty
        Assert-HostStillServes
    }

    It 'refuses an unknown command with UnknownCommand and keeps serving' {
        Assert-Refused (Send-RawRequest '{"command":"format-disk","name":"steady"}') -Code 'UnknownCommand'
        Assert-HostStillServes
    }

    It 'refuses the app name <Label> in a <Command> request with InvalidName and keeps serving' -TestCases @(
        @{ Command = 'stop'; Label = 'with a slash'; Name = 'a/b' }
        @{ Command = 'stop'; Label = 'climbing out of the logs folder'; Name = '../escape' }
        @{ Command = 'stop'; Label = 'with a control character'; Name = "bad`u{1}name" }
        @{ Command = 'stop'; Label = 'with a newline'; Name = "bad`nname" }
        @{ Command = 'stop'; Label = 'of 300 characters'; Name = 'n' * 300 }
        @{ Command = 'start'; Label = 'climbing out of the logs folder'; Name = '../escape' }
        @{ Command = 'start'; Label = 'with a control character'; Name = "bad`u{1}name" }
        @{ Command = 'start'; Label = 'of 300 characters'; Name = 'n' * 300 }
    ) {
        param($Command, $Label, $Name)
        $request = if ($Command -eq 'start') {
            @{
                command = 'start'
                start   = @{ name = $Name; script = $ServerScript; workingDirectory = $Fixtures; instances = 1; environment = @{ PORT = '0' } }
            }
        }
        else {
            @{ command = $Command; name = $Name }
        }
        $logsBefore = @(Get-ChildItem (Join-Path $TestHome 'logs') -Name | Sort-Object)

        Assert-Refused (Send-RawRequest ($request | ConvertTo-Json -Compress -Depth 5)) -Code 'InvalidName'

        @(Get-ChildItem (Join-Path $TestHome 'logs') -Name | Sort-Object) | Should -Be $logsBefore
        Assert-HostStillServes
    }

    It 'refuses a start request for 100000 instances with TooManyInstances, starting nothing' {
        $request = @{
            command = 'start'
            start   = @{ name = 'swarm'; script = $ServerScript; workingDirectory = $Fixtures; instances = 100000; environment = @{ PORT = '0' } }
        }

        Assert-Refused (Send-RawRequest ($request | ConvertTo-Json -Compress -Depth 5)) -Code 'TooManyInstances'

        Get-ClusterApp swarm -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-HostStillServes
    }

    It 'refuses a scale request to 100000 instances with TooManyInstances, leaving the app as it was' {
        Assert-Refused (Send-RawRequest '{"command":"scale","name":"steady","instances":100000}') -Code 'TooManyInstances'

        (Get-ClusterApp steady).Instances.Count | Should -Be 2
        Assert-HostStillServes
    }

    It 'reports the cap on instances as <ErrorId>' -TestCases @(
        @{ ErrorId = 'StartClusterAppTooManyInstances,Cluster.Commands.StartClusterAppCommand'; Command = { Start-ClusterApp $ServerScript -Name swarm -Instances 100000 -Environment @{ PORT = '0' } -ErrorAction Stop } }
        @{ ErrorId = 'SetClusterAppTooManyInstances,Cluster.Commands.SetClusterAppCommand'; Command = { Set-ClusterApp -Name steady -Instances 100000 -ErrorAction Stop } }
    ) {
        param($ErrorId, $Command)
        $caught = $null
        try { & $Command } catch { $caught = $_ }

        $caught | Should -Not -BeNullOrEmpty -Because 'asking for 100000 instances must fail'
        $caught.FullyQualifiedErrorId | Should -Be $ErrorId
        $caught.Exception.Message | Should -BeLike '*at most 1024*'
        Assert-HostStillServes
    }

    It 'keeps serving other clients while silent connections are open' {
        $silent = foreach ($i in 1..3) {
            $socket = [System.Net.Sockets.Socket]::new([System.Net.Sockets.AddressFamily]::Unix, [System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Unspecified)
            $socket.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($Endpoint))
            $socket
        }
        try {
            Assert-HostStillServes
            $reply = Send-RawRequest '{"command":"ping"}'
            $reply.frames.Count | Should -Be 1
            $reply.frames[0]['error'] | Should -BeNullOrEmpty

            # Had the host served the silent connections first, it would only have gone on after dropping them
            # (idle timeout), and they would be closed by now. A socket closed by the peer polls readable with
            # nothing to read.
            foreach ($socket in $silent) {
                $closedByHost = $socket.Poll(0, [System.Net.Sockets.SelectMode]::SelectRead) -and $socket.Available -eq 0
                $closedByHost | Should -BeFalse -Because 'the silent connections are still open while the host answers others'
            }
        }
        finally {
            $silent | ForEach-Object { $_.Dispose() }
        }
        Assert-HostStillServes
    }

    It 'refuses a connection from another local user, while the owner still connects' {
        if (-not $IsLinux) {
            Set-ItResult -Skipped -Because 'a second local user is created with useradd and runuser, on Linux only'
            return
        }
        $useradd = Get-Command -Name useradd -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        $runuser = Get-Command -Name runuser -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if (-not $useradd -or -not $runuser) {
            Set-ItResult -Skipped -Because 'useradd or runuser is not available to create and act as a second local user'
            return
        }
        $otherUser = 'cluster-test-other'
        & id -u $otherUser *> $null
        if ($LASTEXITCODE -ne 0) {
            & $useradd.Source -M $otherUser
            $LASTEXITCODE | Should -Be 0 -Because "useradd must create the local user $otherUser"
        }

        # The other user cannot read this repository's folders necessarily: the client is passed inline.
        $probe = @'
const net = require('node:net');
const result = { connected: false, error: null, frames: [] };
const socket = net.createConnection({ path: process.argv[1] });
let text = '';
socket.on('connect', () => { result.connected = true; socket.write('{"command":"list"}\n'); });
socket.on('data', (chunk) => { text += chunk; });
socket.on('error', (error) => { result.error = error.code || error.message; });
socket.on('close', () => {
  result.frames = text.split('\n').filter((l) => l.length > 0);
  console.log(JSON.stringify(result));
  process.exit(0);
});
setTimeout(() => { result.error = 'TIMEOUT'; socket.destroy(); }, 15000);
'@
        Push-Location /
        try {
            $output = & $runuser.Source -u $otherUser -- $Node -e $probe $Endpoint
        }
        finally {
            Pop-Location
        }
        $LASTEXITCODE | Should -Be 0 -Because "the probe must run as $otherUser"
        $reply = $output | Select-Object -Last 1 | ConvertFrom-Json -AsHashtable

        $reply.frames | Where-Object { $_ -like '*"apps"*' } | Should -BeNullOrEmpty -Because 'another user must not get the app list'
        if ($reply.connected) {
            $reply.frames.Count | Should -Be 0 -Because 'a connection from another user is dropped without an answer'
            $reply.error | Should -Not -Be 'TIMEOUT'
        }
        else {
            $reply.error | Should -BeIn @('EACCES', 'EPERM', 'ECONNREFUSED')
        }

        $own = Send-RawRequest '{"command":"list"}'
        $own.frames.Count | Should -Be 1
        $own.frames[0]['error'] | Should -BeNullOrEmpty
        @($own.frames[0]['apps'] | ForEach-Object { $_['name'] }) | Should -Be @('steady')
        Assert-HostStillServes
    }
}
