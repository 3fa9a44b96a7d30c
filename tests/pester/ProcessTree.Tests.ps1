#Requires -Version 7.0
# Process trees end to end: the processes an instance spawns (here `sleep 300` children of the spawner fixture)
# end with the instance when it is stopped, retired by a reload, removed, or stopped with the host; each worker
# leads its own process group, and still exits when its Node primary dies; what it spawned then ends too. Real host, real Node apps on
# 127.0.0.1. Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Spawner = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/processtree/spawner.js')).Path

    # Starts the spawner with two children per instance; returns the app with the file its children are listed in.
    # Fork-mode instances share no port: they say 'online' instead of listening.
    function Start-Spawner {
        param([Parameter(Mandatory)] [string] $Name, [int] $Instances = 2, [string] $Mode = 'Cluster', [int] $Children = 2)
        $list = Join-Path $TestHome "$Name-$([guid]::NewGuid().ToString('n').Substring(0, 6)).children"
        $environment = @{ CHILD_PIDS = $list; CHILDREN = "$Children" }
        if ($Mode -eq 'Fork') { $environment.PORT = $null }
        $app = Start-FixtureApp -Path $Spawner -Name $Name -Instances $Instances -Environment $environment -StartParameters @{ Mode = $Mode }
        $app.Status | Should -Be 'Online'
        $app | Add-Member -NotePropertyName ChildList -NotePropertyValue $list -PassThru
    }

    # Worker pid -> the pids of the children it spawned; waits until every given worker has listed both.
    function Get-Children {
        param([Parameter(Mandatory)] [string] $List, [Parameter(Mandatory)] [int[]] $WorkerPid)
        $children = @{}
        Wait-Until {
            $children.Clear()
            foreach ($line in @(Get-Content -Path $List -ErrorAction SilentlyContinue)) {
                $parent, $child = [int[]] ($line -split ' ')
                if (-not $children.ContainsKey($parent)) { $children[$parent] = [System.Collections.Generic.List[int]]::new() }
                $children[$parent].Add($child)
            }
            @($WorkerPid | Where-Object { -not $children.ContainsKey($_) -or $children[$_].Count -lt 2 }).Count -eq 0
        } -TimeoutSeconds 10 -Because "workers $($WorkerPid -join ', ') to list their children"
        $children
    }

    function Get-WorkerPid($App) { @($App.Instances | ForEach-Object Pid) }

    function Assert-AllGone {
        param([Parameter(Mandatory)] [int[]] $Id, [string] $Because)
        # A killed child is reaped by whoever inherits it, which takes a moment.
        Wait-Until { @($Id | Where-Object { Test-ProcessRunning -Id $_ }).Count -eq 0 } -TimeoutSeconds 10 -Because $Because
    }

    function Remove-AllApps {
        Get-ClusterApp -ErrorAction SilentlyContinue | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
    }
}

AfterAll {
    Remove-TestClusterHome -Path $TestHome
}

Describe 'Processes an instance spawned' -Skip:(-not $IsLinux) {
    AfterEach { Remove-AllApps }

    It 'runs each <Mode>-mode worker as the leader of its own process group, with its children in it' -ForEach @(
        @{ Mode = 'Cluster' }
        @{ Mode = 'Fork' }
    ) {
        $app = Start-Spawner -Name "group-$($Mode.ToLower())" -Mode $Mode
        $workers = Get-WorkerPid $app
        $children = Get-Children -List $app.ChildList -WorkerPid $workers

        foreach ($worker in $workers) {
            Get-ProcessGroupId -Id $worker | Should -Be $worker
            foreach ($child in $children[$worker]) { Get-ProcessGroupId -Id $child | Should -Be $worker }
        }
    }

    It 'are gone after Stop-ClusterApp (<Mode> mode)' -ForEach @(
        @{ Mode = 'Cluster' }
        @{ Mode = 'Fork' }
    ) {
        $app = Start-Spawner -Name "stop-$($Mode.ToLower())" -Mode $Mode
        $workers = Get-WorkerPid $app
        $children = Get-Children -List $app.ChildList -WorkerPid $workers
        $all = @($children.Values | ForEach-Object { $_ })
        $all | ForEach-Object { Test-ProcessRunning -Id $_ | Should -BeTrue }

        Stop-ClusterApp -Name $app.Name

        (Get-ClusterApp -Name $app.Name).Status | Should -Be 'Stopped'
        Assert-AllGone -Id ($workers + $all) -Because 'a stopped instance ends the processes it spawned'
    }

    It 'are gone, for the old instances only, after a reload' {
        $app = Start-Spawner -Name reloaded
        $oldWorkers = Get-WorkerPid $app
        $oldChildren = Get-Children -List $app.ChildList -WorkerPid $oldWorkers

        $after = Invoke-ClusterReload -Name $app.Name

        $after.Status | Should -Be 'Online'
        $newWorkers = Get-WorkerPid $after
        $newWorkers | ForEach-Object { $_ | Should -Not -BeIn $oldWorkers }
        Assert-AllGone -Id ($oldWorkers + @($oldChildren.Values | ForEach-Object { $_ })) -Because 'a retired instance ends the processes it spawned'
        $newChildren = Get-Children -List $app.ChildList -WorkerPid $newWorkers
        foreach ($child in @($newWorkers | ForEach-Object { $newChildren[$_] })) {
            Test-ProcessRunning -Id $child | Should -BeTrue -Because 'the new instances and what they spawned go on running'
        }
    }

    It 'are gone after Remove-ClusterApp' {
        $app = Start-Spawner -Name removed
        $workers = Get-WorkerPid $app
        $children = Get-Children -List $app.ChildList -WorkerPid $workers

        Remove-ClusterApp -Name $app.Name -Confirm:$false

        Get-ClusterApp | Where-Object Name -EQ $app.Name | Should -BeNullOrEmpty
        Assert-AllGone -Id ($workers + @($children.Values | ForEach-Object { $_ })) -Because 'a removed instance ends the processes it spawned'
    }

    It 'are gone after Stop-ClusterHost' {
        $app = Start-Spawner -Name host-stopped
        $workers = Get-WorkerPid $app
        $children = Get-Children -List $app.ChildList -WorkerPid $workers
        $hostPid = (Get-ClusterHost).Pid

        Stop-ClusterHost -Confirm:$false

        Test-ProcessRunning -Id $hostPid | Should -BeFalse
        Assert-AllGone -Id ($workers + @($children.Values | ForEach-Object { $_ })) -Because 'stopping the host stops every instance and what it spawned'
    }

    It 'still lets a cluster worker exit with its Node primary, although the worker leads its own group' {
        # No children: a primary killed with SIGKILL can end nothing, and what the worker spawned would be left.
        $app = Start-Spawner -Name orphaned -Instances 1 -Children 0
        $worker = (Get-WorkerPid $app)[0]
        $primary = Get-ParentProcessId -Id $worker
        (Get-Content -Raw "/proc/$primary/cmdline") | Should -Match 'primary\.js'

        Stop-Process -Id $primary -Force # SIGKILL: the primary can do nothing about it

        Assert-AllGone -Id $worker -Because 'a cluster worker exits when the IPC channel to its primary closes'
    }

    It 'are gone when the Node primary is killed, and the app comes back with the same NODE_APP_INSTANCE values' {
        $app = Start-Spawner -Name primary-lost
        $oldWorkers = Get-WorkerPid $app
        $oldChildren = @((Get-Children -List $app.ChildList -WorkerPid $oldWorkers).Values | ForEach-Object { $_ })
        $primary = Get-ParentProcessId -Id $oldWorkers[0]

        Stop-Process -Id $primary -Force # SIGKILL: the primary can end nothing; the host ends its workers' groups

        Assert-AllGone -Id ($oldWorkers + $oldChildren) -Because 'the processes the workers of a lost primary spawned end with them'
        Wait-Until {
            $now = Get-ClusterApp -Name $app.Name
            "$($now.Status)" -eq 'Online' -and @($now.Instances | Where-Object { $_.Pid -and $_.Pid -notin $oldWorkers }).Count -eq 2
        } -Because 'both instances to come back on a new primary'
        $back = Get-ClusterApp -Name $app.Name
        @($back.Instances.Instance) | Should -Be @(0, 1)
        $instanceOf = @{}
        foreach ($instance in $back.Instances) { $instanceOf[[int] $instance.Pid] = "$($instance.Instance)" }
        $answered = @{}
        for ($i = 0; $i -lt 60 -and $answered.Count -lt 2; $i++) {
            $answer = Invoke-TestRequest -Port $app.Port
            $answered[[int] $answer.pid] = "$($answer.instance)"
        }
        $answered.Count | Should -Be 2 -Because 'both new workers answer'
        foreach ($workerPid in $answered.Keys) {
            $answered[$workerPid] | Should -Be $instanceOf[$workerPid] -Because "worker $workerPid runs as the NODE_APP_INSTANCE of the instance it replaced"
        }
        $newChildren = Get-Children -List $app.ChildList -WorkerPid @($back.Instances.Pid)
        foreach ($child in @($back.Instances.Pid | ForEach-Object { $newChildren[[int] $_] })) {
            Test-ProcessRunning -Id $child | Should -BeTrue -Because 'the new workers and what they spawned run on'
        }
    }
}
