#Requires -Version 7.0
# Sticky sessions (-Sticky): the primary accepts the app's connections and hands each to the instance its client's
# address maps to. The fixture app (tests/fixtures/sticky/app.js) says who served each request; clients.js makes
# requests from several loopback source addresses and runs socket.io clients on the polling transport. Real host,
# real Node apps on 127.0.0.1; socket.io comes from npm (tests/fixtures/sticky/package-lock.json), installed here
# when it is missing.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule

    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/sticky')).Path
    $script:HostPid = (Get-ClusterHost).Pid
    $script:PSDefaultParameterValues = @{ 'Start-TestApp:Fixtures' = $Fixtures }
    $script:Node = (Get-Command -Name node -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source

    if (-not (Test-Path (Join-Path $Fixtures 'node_modules/socket.io-client'))) {
        $npm = (Get-Command -Name npm -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
        & $npm ci --prefix $Fixtures --no-audit --no-fund --loglevel=error | Out-Host
        if ($LASTEXITCODE) { throw "npm ci in $Fixtures failed (exit code $LASTEXITCODE): the socket.io tests need its packages." }
    }

    # Runs clients.js in the given mode against the port and returns its result.
    function Invoke-StickyClient {
        param([Parameter(Mandatory)] [string] $Mode, [Parameter(Mandatory)] [int] $Port, [object[]] $Arguments = @())
        $output = & $Node (Join-Path $Fixtures 'clients.js') $Mode --port $Port @Arguments
        if ($LASTEXITCODE) { throw "clients.js $Mode exited with code $LASTEXITCODE." }
        $output | Select-Object -Last 1 | ConvertFrom-Json -AsHashtable
    }

    # Source address -> the instance numbers that served it (each source's requests, in order).
    function Get-InstanceBySource {
        param([Parameter(Mandatory)] [int] $Port, [int] $Sources = 12, [int] $Requests = 5)
        $result = Invoke-StickyClient -Mode addresses -Port $Port -Arguments @('--sources', $Sources, '--requests', $Requests)
        $result.failed | Should -Be 0 -Because 'every request is answered'
        $result.sources
    }
}

AfterAll {
    Remove-TestClusterHome -Path $TestHome
}

Describe 'Sticky sessions' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }

    It 'sends every request of one client address to one instance, and the addresses to every instance' {
        $app = Start-TestApp -Script app.js -Name sticky -Instances 2 -StartParameters @{ Sticky = $true }
        $app.Sticky | Should -BeTrue

        $one = Invoke-StickyClient -Mode addresses -Port $app.Port -Arguments @('--sources', 1, '--requests', 200)
        $one.failed | Should -Be 0
        $served = @($one.sources['127.0.0.2'])
        $served.Count | Should -Be 200
        @($served.pid | Sort-Object -Unique).Count | Should -Be 1 -Because 'one client address always reaches one instance'

        $bySource = Get-InstanceBySource -Port $app.Port -Sources 12 -Requests 5
        foreach ($source in $bySource.Keys) {
            @($bySource[$source].pid | Sort-Object -Unique).Count | Should -Be 1 -Because "$source always reaches the same instance"
        }
        $pids = @($bySource.Values | ForEach-Object { $_.pid } | Sort-Object -Unique)
        $pids | Should -Be @((Get-ClusterApp sticky).Instances.Pid | Sort-Object) -Because 'the client addresses are spread over both instances'
        (Invoke-TestRequest -Port $app.Port).port | Should -Be $app.Port -Because 'server.address() tells the app the port it asked for'
    }

    It 'keeps each client on its instance through a reload, its successor serving it, failing no request under load' {
        $app = Start-TestApp -Script app.js -Name rolling -Instances 2 -StartParameters @{ Sticky = $true }
        $before = Get-InstanceBySource -Port $app.Port -Sources 8 -Requests 2
        $oldPids = @((Get-ClusterApp rolling).Instances.Pid)

        $client = Start-LoadClient -Port $app.Port -Folder $TestHome
        try {
            $reloaded = Invoke-ClusterReload -Name rolling -ErrorAction Stop
        }
        finally {
            $load = Stop-LoadClient $client
        }

        "$($reloaded.Status)" | Should -Be 'Online'
        $load.failed | Should -Be 0 -Because "a sticky reload fails no request ($($load | ConvertTo-Json -Compress))"
        $load.ok | Should -BeGreaterThan 0
        $after = Get-InstanceBySource -Port $app.Port -Sources 8 -Requests 2
        foreach ($source in $before.Keys) {
            @($after[$source].instance | Sort-Object -Unique) | Should -Be @($before[$source][0].instance) -Because "$source stays with its instance"
            $after[$source][0].pid | Should -Not -BeIn $oldPids -Because 'the successor of its instance serves it'
        }
    }

    It 'fails no request (<Connection>) through a graceful reload whose app closes its own server on ''shutdown''' -ForEach @(
        @{ Connection = 'keep-alive' }
        @{ Connection = 'close' }
    ) {
        $app = Start-TestApp -Script (Join-Path $PSScriptRoot '../fixtures/reload/graceful.js') -Name "graceful-$Connection" -Instances 2 -StartParameters @{ Sticky = $true }
        $oldPids = @($app.Instances.Pid)

        $client = Start-LoadClient -Port $app.Port -Connection $Connection -Folder $TestHome
        try {
            $reloaded = Invoke-ClusterGracefulReload -Name $app.Name -ErrorAction Stop
        }
        finally {
            $load = Stop-LoadClient $client
        }

        "$($reloaded.Status)" | Should -Be 'Online'
        $load.failed | Should -Be 0 -Because "connections that reach a closing server go to another instance ($($load | ConvertTo-Json -Compress))"
        @($reloaded.Instances.Pid | Where-Object { $_ -in $oldPids }) | Should -BeNullOrEmpty
    }

    It 'moves the clients of an instance whose app closes its server to another instance, failing no request' {
        $app = Start-TestApp -Script app.js -Name closer -Instances 2 -StartParameters @{ Sticky = $true }
        $served = Invoke-TestRequest -Port $app.Port
        $client = Start-LoadClient -Port $app.Port -Connection close -Folder $TestHome
        try {
            (Get-ClusterApp closer).Instances | Where-Object Instance -EQ ([int] $served.instance) | Send-ClusterMessage -Message 'close-server'
            Start-Sleep -Milliseconds 1500
        }
        finally {
            $load = Stop-LoadClient $client
        }

        $load.failed | Should -Be 0 -Because "each connection on its way to the closing server goes to the other instance ($($load | ConvertTo-Json -Compress))"
        $other = @((Get-ClusterApp closer).Instances | Where-Object Pid -NE $served.pid).Pid
        $load.pids.Keys | Should -Contain "$other" -Because 'the other instance took the client over'
        (Invoke-TestRequest -Port $app.Port).pid | Should -Be $other
    }

    It 'refuses a port that is not one in the app, as Node does, and the other apps of its primary go on' {
        $other = Start-TestApp -Script app.js -Name neighbour -Instances 2
        $pids = @($other.Instances.Pid | Sort-Object)

        $outcome = Get-ThrownError { Start-ClusterApp -Path (Join-Path $Fixtures 'app.js') -Name badport -Instances 1 -Sticky -Environment @{ PORT = '80800' } -ErrorAction Stop }

        $outcome.FullyQualifiedErrorId | Should -Be 'StartClusterAppInstanceExited,Cluster.Commands.StartClusterAppCommand'
        $outcome.Exception.Message | Should -Match 'ERR_SOCKET_BAD_PORT'
        @((Get-ClusterApp neighbour).Instances.Pid | Sort-Object) | Should -Be $pids -Because 'the primary the two apps share did not go down'
        (Invoke-TestRequest -Port $other.Port).pid | Should -BeIn $pids
    }

    It 'lets socket.io on the polling transport alone connect with no error, which it cannot without -Sticky' {
        $sticky = Start-TestApp -Script app.js -Name io -Instances 2 -Environment @{ KIND = 'socketio' } -StartParameters @{ Sticky = $true }
        $shared = Start-TestApp -Script app.js -Name io-shared -Instances 2 -Environment @{ KIND = 'socketio' }

        $result = Invoke-StickyClient -Mode socketio -Port $sticky.Port -Arguments @('--clients', 8, '--messages', 20)
        $without = Invoke-StickyClient -Mode socketio -Port $shared.Port -Arguments @('--clients', 8, '--messages', 5)

        $summary = $result | ConvertTo-Json -Compress
        $result.connectErrors | Should -Be 0 -Because "no polling request reaches an instance that does not know its session ($summary)"
        $result.stalled | Should -Be 0 -Because $summary
        $result.connected | Should -Be 8
        $result.answered | Should -Be 160
        $result.errors.Count | Should -Be 0 -Because $summary
        ($without.connectErrors + $without.stalled + $without.errors.Count) | Should -BeGreaterThan 0 -Because "polling requests shared among instances lose their session ($($without | ConvertTo-Json -Compress))"
    }

    It 'passes an HTTP readiness check through the sticky listen, on the instance''s own port' {
        $app = Start-TestApp -Script app.js -Name checked -Instances 2 -StartParameters @{ Sticky = $true; HealthCheckPath = '/' }

        $reloaded = Invoke-ClusterReload -Name checked -ErrorAction Stop

        "$($reloaded.Status)" | Should -Be 'Online'
        (Invoke-TestRequest -Port $app.Port).pid | Should -BeIn @($reloaded.Instances.Pid)
    }

    It 'fails the start with the port''s error when the address is taken, and the host goes on' {
        $taken = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $taken.Start()
        try {
            $port = $taken.LocalEndpoint.Port
            $outcome = Get-ThrownError { Start-ClusterApp -Path (Join-Path $Fixtures 'app.js') -Name busy -Instances 1 -Sticky -Environment @{ PORT = "$port" } -ErrorAction Stop }
        }
        finally {
            $taken.Stop()
        }

        $outcome.FullyQualifiedErrorId | Should -Be 'StartClusterAppInstanceExited,Cluster.Commands.StartClusterAppCommand'
        $outcome.Exception.Message | Should -Match 'EADDRINUSE'
        (Get-ClusterHost).Pid | Should -Be $HostPid
    }
}

Describe 'Sticky as a setting' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }

    It 'refuses -Sticky for a fork-mode app and with -Scheduling Shared, naming what to do' {
        $path = Join-Path $Fixtures 'app.js'
        $fork = Get-ThrownError { Start-ClusterApp -Path $path -Name forked -Mode Fork -Sticky -ErrorAction Stop }
        $fork.FullyQualifiedErrorId | Should -Be 'StartClusterAppStickyNeedsCluster,Cluster.Commands.StartClusterAppCommand'
        $fork.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $fork.Exception.Message | Should -Match 'cluster mode'

        $shared = Get-ThrownError { Start-ClusterApp -Path $path -Name shared -Sticky -Scheduling Shared -ErrorAction Stop }
        $shared.FullyQualifiedErrorId | Should -Be 'StartClusterAppStickyWithSharedScheduling,Cluster.Commands.StartClusterAppCommand'
        @(Get-ClusterApp).Count | Should -Be 0
    }

    It 'refuses to turn a running app sticky by a reload, leaving it serving, and turns a stopped one' {
        $app = Start-TestApp -Script app.js -Name plain -Instances 2
        $pids = @($app.Instances.Pid | Sort-Object)

        $refused = Get-ThrownError { Set-ClusterApp -Name plain -Sticky -ErrorAction Stop }

        $refused.FullyQualifiedErrorId | Should -Be 'SetClusterAppSettingNeedsRestart,Cluster.Commands.SetClusterAppCommand'
        $refused.Exception.Message | Should -Match 'Sticky from False to True'
        @((Get-ClusterApp plain).Instances.Pid | Sort-Object) | Should -Be $pids
        (Invoke-TestRequest -Port $app.Port).pid | Should -BeIn $pids

        Stop-ClusterApp -Name plain -Confirm:$false | Out-Null
        Set-ClusterApp -Name plain -Sticky -ErrorAction Stop | Out-Null
        $restarted = Restart-ClusterApp -Name plain -PassThru -ErrorAction Stop

        "$($restarted.Status)" | Should -Be 'Online'
        $restarted.Sticky | Should -BeTrue
        ($restarted | Format-List | Out-String) | Should -Match 'Sticky\s+: True'
        Export-ClusterApp -Name plain | Should -Match 'Sticky = \$true'
        $bySource = Get-InstanceBySource -Port $app.Port -Sources 4 -Requests 3
        foreach ($source in $bySource.Keys) { @($bySource[$source].pid | Sort-Object -Unique).Count | Should -Be 1 }
    }
}
