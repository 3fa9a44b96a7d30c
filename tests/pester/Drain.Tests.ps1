#Requires -Version 7.0
# Long-lived connections through reloads: WebSocket, HTTP/2 and plain TCP clients (tests/fixtures/drain/client.js,
# bounded in time) against the fixture app of tests/fixtures/drain, which never closes a connection itself. The drain
# preload winds the retiring workers' connections down cleanly (close 1001, GOAWAY, FIN), the clients move to the
# new workers, and the old ones exit once their connections are gone, long before their kill timeout. Real host,
# real Node apps on 127.0.0.1. Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeDiscovery {
    # Each kind of connection, to an app whose instances share the port and to a sticky one (the primary hands its
    # connections over; its retiring workers drain the same way).
    $Connections = foreach ($of in '', ' of a sticky app') {
        foreach ($kind in 'ws', 'h2', 'tcp') { @{ Kind = $kind; Of = $of } }
    }
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule

    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/drain')).Path

    # Starts app.js of the given kind, with a markers folder of its own (MARKERS/<pid>.log: its events in order).
    function Start-DrainApp {
        param([Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [string] $Kind, [hashtable] $Environment = @{}, [hashtable] $StartParameters = @{})
        $markers = Join-Path $TestHome "$Name-markers"
        New-Item -ItemType Directory -Path $markers -Force | Out-Null
        $app = Start-FixtureApp -Path (Join-Path $Fixtures 'app.js') -Name $Name -Environment (@{ KIND = $Kind; MARKERS = $markers } + $Environment) -StartParameters $StartParameters
        $app.Status | Should -Be 'Online'
        $app | Add-Member -NotePropertyName Markers -NotePropertyValue $markers -PassThru
    }

    function Get-Marker {
        param([Parameter(Mandatory)] $App, [Parameter(Mandatory)] [int] $Id)
        @(Get-Content -Path (Join-Path $App.Markers "$Id.log") -ErrorAction SilentlyContinue)
    }

    # Runs client.js (at most 60 s) until Stop-DrainClient; returns once it has had its first answers.
    function Start-DrainClient {
        param([Parameter(Mandatory)] [string] $Kind, [Parameter(Mandatory)] [int] $Port, [int] $Connections = 4)
        $arguments = @('--kind', $Kind, '--port', $Port, '--connections', $Connections, '--max-seconds', 60)
        Start-NodeClient -Script (Join-Path $Fixtures 'client.js') -Arguments $arguments -Folder $TestHome -What "$Kind client"
    }

    # Stops a client and returns its result (see client.js).
    function Stop-DrainClient {
        param([Parameter(Mandatory)] $Client)
        Stop-NodeClient -Client $Client -TimeoutSeconds 30
    }

    function Get-HostLogLine {
        @(Get-Content -Path (Join-Path $TestHome 'logs/host.log'))
    }

    # What the client saw: nothing lost or dropped abruptly, no error, and its clean ends (one per retired
    # connection at least) of the kind's own sort.
    function Assert-CleanClient {
        param([Parameter(Mandatory)] [hashtable] $Result, [Parameter(Mandatory)] [string] $Kind, [int] $Reloads)
        $summary = $Result | ConvertTo-Json -Compress -Depth 3
        $Result.lost | Should -Be 0 -Because "no message is lost to an abrupt drop ($summary)"
        $Result.abrupt | Should -Be 0 -Because "no connection ends abruptly ($summary)"
        $Result.errors.Count | Should -Be 0 -Because "the client gets no error ($summary)"
        $Result.answered | Should -BeGreaterThan 0
        switch ($Kind) {
            'ws' {
                @($Result.closes.Keys) | Should -Be @('1001') -Because "the server only ever closes with 1001, going away, never 1006 ($summary)"
                $Result.closes['1001'] | Should -BeGreaterOrEqual $Reloads
            }
            'h2' { $Result.goaways | Should -BeGreaterOrEqual $Reloads -Because "each retired session is told GOAWAY ($summary)" }
            'tcp' { $Result.fins | Should -BeGreaterOrEqual $Reloads -Because "each retired socket gets a FIN ($summary)" }
        }
        $Result.connections | Should -BeGreaterThan $Reloads -Because "the client reconnects after each clean end ($summary)"
    }
}

AfterAll {
    Remove-TestClusterHome -Path $TestHome
}

Describe 'Long-lived connections through reloads' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }

    It 'a <Kind> client<Of> loses nothing through 3 plain reloads, and each old worker exits once its connections are gone' -ForEach $Connections {
        # Kept running by a timer: it exits only on a signal, SIGINT here.
        $app = Start-DrainApp -Name "plain-$Kind$(if ($Of) { '-sticky' })" -Kind $Kind -Environment @{ KEEP_ALIVE = '1' } -StartParameters @{ Sticky = [bool] $Of }
        $client = Start-DrainClient -Kind $Kind -Port $app.Port
        $oldPids = [System.Collections.Generic.List[int]]::new()
        try {
            for ($reload = 0; $reload -lt 3; $reload++) {
                $oldPids.AddRange([int[]] @((Get-ClusterApp -Name $app.Name).Instances.Pid))
                # A kill timeout of a minute: the reload finishes in time only if the old workers exit on their own.
                $null = Invoke-ClusterReload -Name $app.Name -KillTimeout 60000 -ErrorAction Stop
            }
        }
        finally {
            $result = Stop-DrainClient -Client $client
        }

        Assert-CleanClient -Result $result -Kind $Kind -Reloads 3
        @($result.pids.Keys | Where-Object { [int] $_ -in $oldPids }).Count | Should -BeGreaterOrEqual 3 -Because 'the client was served by the old workers of each reload'
        $hostLog = Get-HostLogLine
        foreach ($oldPid in $oldPids) {
            Test-ProcessRunning -Id $oldPid | Should -BeFalse
            Get-Marker -App $app -Id $oldPid | Should -Be @('listening', 'disconnect', 'sigint') -Because "old worker $oldPid had its servers closed (its connections all gone) before it got SIGINT"
            @($hostLog -match "\(pid $oldPid\) did not exit in time") | Should -BeNullOrEmpty -Because "old worker $oldPid exited without being killed"
        }
    }

    It 'a <Kind> client<Of> loses nothing through a graceful reload, and each old worker exits on its own after closing its server' -ForEach $Connections {
        $app = Start-DrainApp -Name "graceful-$Kind$(if ($Of) { '-sticky' })" -Kind $Kind -StartParameters @{ KillTimeout = 60000; Sticky = [bool] $Of }
        $oldPids = @($app.Instances.Pid)
        $client = Start-DrainClient -Kind $Kind -Port $app.Port
        try {
            $null = Invoke-ClusterGracefulReload -Name $app.Name -GracefulTimeout 60000 -ErrorAction Stop
        }
        finally {
            $result = Stop-DrainClient -Client $client
        }

        Assert-CleanClient -Result $result -Kind $Kind -Reloads 1
        foreach ($oldPid in $oldPids) {
            Test-ProcessRunning -Id $oldPid | Should -BeFalse
            Get-Marker -App $app -Id $oldPid | Should -Be @('listening', 'shutdown', 'disconnect') -Because "old worker $oldPid closed its server on 'shutdown' and exited once its connections were gone, with no signal"
        }
    }
}
