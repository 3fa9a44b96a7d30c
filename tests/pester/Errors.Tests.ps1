#Requires -Version 7.0
# Bad input end to end: every mistake gives an ErrorRecord with its full FullyQualifiedErrorId and a specific
# category, and leaves nothing half-started behind (no app listed, no process left under the host).

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/foundation')).Path
    $script:EchoScript = Join-Path $Fixtures 'echo.js'
    $script:ScratchFolders = [System.Collections.Generic.List[string]]::new()

    function New-ScratchFolder {
        $path = Join-Path ([IO.Path]::GetTempPath()) ('cl-err-' + [guid]::NewGuid().ToString('n').Substring(0, 10))
        $null = New-Item -ItemType Directory -Path $path
        $ScratchFolders.Add($path)
        $path
    }

    # A folder holding a 'node' that says it is Node 0.10.
    function New-OldNodeFolder {
        $folder = New-ScratchFolder
        if ($IsWindows) {
            Set-Content -Path (Join-Path $folder 'node.cmd') -Value '@echo v0.10.48'
        }
        else {
            $node = Join-Path $folder 'node'
            [IO.File]::WriteAllText($node, "#!/bin/sh`necho v0.10.48`n")
            [IO.File]::SetUnixFileMode($node, [IO.UnixFileMode]'UserRead, UserWrite, UserExecute')
        }
        $folder
    }

    # The Node processes of this CLUSTER_HOME: its primaries (started by the host, or naming the CLUSTER_HOME on
    # their command line) and their workers.
    function Get-ClusterNodeProcess {
        $hostPid = (Get-ClusterHost).Pid
        $nodes = @(Get-Process -Name node -ErrorAction SilentlyContinue)
        $primaries = @($nodes | Where-Object { ($_.Parent -and $_.Parent.Id -eq $hostPid) -or ($_.CommandLine -and $_.CommandLine.Contains($TestHome)) })
        $primaryIds = @($primaries | ForEach-Object Id)
        $workers = @($nodes | Where-Object { $_.Parent -and $_.Parent.Id -in $primaryIds })
        # Workers name CLUSTER_HOME too (they preload drain.js from the host's runtime copy in it): each process once.
        @(@($primaries) + @($workers) | Sort-Object Id -Unique)
    }

    function Assert-NothingStarted {
        @(Get-ClusterApp).Count | Should -Be 0
        Wait-Until -TimeoutSeconds 10 -Because 'no Node process of this CLUSTER_HOME to be left' -Condition { @(Get-ClusterNodeProcess).Count -eq 0 }
    }

    function Assert-SingleError {
        param(
            [AllowEmptyCollection()] [object[]] $Failures,
            [Parameter(Mandatory)] [string] $ErrorId,
            [Parameter(Mandatory)] [System.Management.Automation.ErrorCategory] $Category
        )
        @($Failures).Count | Should -Be 1 -Because "one ErrorRecord is expected, got: $($Failures | Out-String)"
        $Failures[0] | Should -BeOfType [System.Management.Automation.ErrorRecord]
        $Failures[0].FullyQualifiedErrorId | Should -Be $ErrorId
        $Failures[0].CategoryInfo.Category | Should -Be $Category
        $Failures[0].Exception.Message | Should -Not -BeNullOrEmpty
    }
}

AfterAll {
    foreach ($folder in $ScratchFolders) { Remove-Item -Recurse -Force $folder -ErrorAction SilentlyContinue }
    Remove-TestClusterHome $TestHome
}

Describe 'Start-ClusterApp with bad input' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false
    }

    It 'refuses a script that does not exist' {
        $missing = Join-Path $Fixtures 'no-such-script.js'

        $result = Start-ClusterApp $missing -ErrorVariable failures -ErrorAction SilentlyContinue

        $result | Should -BeNullOrEmpty
        Assert-SingleError $failures -ErrorId 'StartClusterAppScriptNotFound,Cluster.Commands.StartClusterAppCommand' -Category ObjectNotFound
        $failures[0].Exception.Message | Should -BeLike '*no-such-script.js*'
        Assert-NothingStarted
    }

    It 'turns a missing script into a terminating error under $ErrorActionPreference = Stop' {
        $missing = Join-Path $Fixtures 'no-such-script.js'
        $outcome = & {
            $ErrorActionPreference = 'Stop'
            try {
                $null = Start-ClusterApp $missing
                'went on'
            }
            catch {
                $_
            }
        }

        $outcome | Should -BeOfType [System.Management.Automation.ErrorRecord]
        $outcome.FullyQualifiedErrorId | Should -Be 'StartClusterAppScriptNotFound,Cluster.Commands.StartClusterAppCommand'
        $outcome.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Assert-NothingStarted
    }

    It 'says Node.js is not installed when node is not on the PATH the app runs with' {
        $empty = New-ScratchFolder

        $result = Start-ClusterApp $EchoScript -Name nonode -Environment @{ PATH = $empty; PORT = '0' } -ErrorVariable failures -ErrorAction SilentlyContinue

        $result | Should -BeNullOrEmpty
        Assert-SingleError $failures -ErrorId 'StartClusterAppNodeNotFound,Cluster.Commands.StartClusterAppCommand' -Category NotInstalled
        Assert-NothingStarted
    }

    It 'refuses a Node.js too old for cluster mode and names the version it needs' {
        $oldNode = New-OldNodeFolder
        $path = $oldNode + [IO.Path]::PathSeparator + $env:PATH

        $result = Start-ClusterApp $EchoScript -Name oldnode -Environment @{ PATH = $path; PORT = '0' } -ErrorVariable failures -ErrorAction SilentlyContinue

        $result | Should -BeNullOrEmpty
        Assert-SingleError $failures -ErrorId 'StartClusterAppNodeTooOld,Cluster.Commands.StartClusterAppCommand' -Category NotInstalled
        $failures[0].Exception.Message | Should -Match 'v0\.10\.48'
        $failures[0].Exception.Message | Should -Match 'Node\.js 18 or later'
        Assert-NothingStarted
    }

    It 'refuses a name already in use and leaves the app of that name untouched' {
        $first = Start-ClusterApp $EchoScript -Name taken -Instances 2 -Environment @{ PORT = '0' } -ErrorAction Stop
        $pids = @($first.Instances | Sort-Object Instance | ForEach-Object Pid)

        $result = Start-ClusterApp $EchoScript -Name taken -Environment @{ PORT = '0' } -ErrorVariable failures -ErrorAction SilentlyContinue

        $result | Should -BeNullOrEmpty
        Assert-SingleError $failures -ErrorId 'StartClusterAppNameInUse,Cluster.Commands.StartClusterAppCommand' -Category ResourceExists
        $apps = @(Get-ClusterApp)
        $apps.Count | Should -Be 1
        $apps[0].Status | Should -Be 'Online'
        @($apps[0].Instances | Sort-Object Instance | ForEach-Object Pid) | Should -Be $pids
        foreach ($id in $pids) { Test-ProcessAlive -Id $id | Should -BeTrue }
        @(Get-ClusterNodeProcess).Count | Should -Be 3 -Because 'the one primary and its two workers are all that runs'
    }

    It 'reports instances that exit before they are ready, with their exit code and error output, and keeps nothing' {
        $result = Start-ClusterApp (Join-Path $Fixtures 'exit-early.js') -Name quitter -Instances 2 -Environment @{ PORT = '0' } -ErrorVariable failures -ErrorAction SilentlyContinue

        $result | Should -BeNullOrEmpty
        Assert-SingleError $failures -ErrorId 'StartClusterAppInstanceExited,Cluster.Commands.StartClusterAppCommand' -Category InvalidResult
        $failures[0].Exception.Message | Should -Match '\bcode 3\b'
        $failures[0].Exception.Message | Should -BeLike '*exit-early fixture: refusing to start (FOUNDATION_EXIT_EARLY_7Q2)*'
        Assert-NothingStarted
    }

    It 'refuses the invalid name <Label>' -TestCases @(
        @{ Label = 'bad/name'; Name = 'bad/name' }
        @{ Label = 'of 200 characters'; Name = 'n' * 200 }
    ) {
        $result = Start-ClusterApp $EchoScript -Name $Name -Environment @{ PORT = '0' } -ErrorVariable failures -ErrorAction SilentlyContinue

        $result | Should -BeNullOrEmpty
        Assert-SingleError $failures -ErrorId 'StartClusterAppInvalidName,Cluster.Commands.StartClusterAppCommand' -Category InvalidArgument
        Assert-NothingStarted
    }

    It 'refuses more instances than one app may have' {
        $result = Start-ClusterApp $EchoScript -Name swarm -Instances 100000 -Environment @{ PORT = '0' } -ErrorVariable failures -ErrorAction SilentlyContinue

        $result | Should -BeNullOrEmpty
        Assert-SingleError $failures -ErrorId 'StartClusterAppTooManyInstances,Cluster.Commands.StartClusterAppCommand' -Category LimitsExceeded
        Assert-NothingStarted
    }
}

Describe 'Cmdlets given an app that does not exist' {
    It '<Command> writes <ErrorId>' -TestCases @(
        @{ Command = 'Stop-ClusterApp'; ErrorId = 'StopClusterAppAppNotFound,Cluster.Commands.StopClusterAppCommand' }
        @{ Command = 'Restart-ClusterApp'; ErrorId = 'RestartClusterAppAppNotFound,Cluster.Commands.RestartClusterAppCommand' }
        @{ Command = 'Remove-ClusterApp'; ErrorId = 'RemoveClusterAppAppNotFound,Cluster.Commands.RemoveClusterAppCommand' }
        @{ Command = 'Get-ClusterAppLog'; ErrorId = 'GetClusterAppLogAppNotFound,Cluster.Commands.GetClusterAppLogCommand' }
    ) {
        $parameters = @{ Name = 'no-such-app'; ErrorVariable = 'failures'; ErrorAction = 'SilentlyContinue' }
        if ($Command -eq 'Remove-ClusterApp') { $parameters.Confirm = $false }

        $result = & $Command @parameters

        $result | Should -BeNullOrEmpty
        Assert-SingleError $failures -ErrorId $ErrorId -Category ObjectNotFound
        $failures[0].TargetObject | Should -Be 'no-such-app'
        Assert-NothingStarted
    }
}
