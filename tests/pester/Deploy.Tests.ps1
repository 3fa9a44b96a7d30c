# Deployment files: Sync-ClusterApp applies one again and again, Export-ClusterApp writes one back,
# Set-ClusterApp changes any setting by a rolling reload. Real host, real Node apps on 127.0.0.1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Fixtures = Join-Path $PSScriptRoot '../fixtures/deploy' | Resolve-Path
    $script:Work = Join-Path $TestHome 'work'
    New-Item -ItemType Directory -Path $Work | Out-Null
    Copy-Item (Join-Path $Fixtures 'app.js') $Work

    # A data file for the apps, each @{ Name; Port; Instances; Greeting } plus any extra settings.
    function Write-DeploymentFile {
        param([Parameter(Mandatory)] [string] $Path, [Parameter(Mandatory)] [hashtable[]] $Apps)
        $entries = foreach ($app in $Apps) {
            $extra = ($app.Keys | Where-Object { $_ -notin 'Name', 'Port', 'Instances', 'Greeting' } | ForEach-Object { "$_ = $($app[$_])" }) -join '; '
            "        @{ Name = '$($app.Name)'; Path = './app.js'; Instances = $($app.Instances); Environment = @{ PORT = '$($app.Port)'; GREETING = '$($app.Greeting)' }; $extra }"
        }
        Set-Content -Path $Path -Value "@{`n    Apps = @(`n$($entries -join "`n")`n    )`n}"
        $Path
    }

    function Get-InstancePid { param($App) @($App.Instances | ForEach-Object Pid | Sort-Object) }

    function Remove-EveryApp { Get-ClusterApp | Remove-ClusterApp -Confirm:$false }
}

AfterAll {
    Remove-TestClusterHome $TestHome
}

Describe 'Sync-ClusterApp' {
    BeforeEach {
        $script:Ports = @{ web = Get-FreePort; api = Get-FreePort }
        $script:File = Join-Path $Work 'cluster.psd1'
    }

    AfterEach { Remove-EveryApp }

    It 'starts the apps a file lists, and a second run changes nothing' {
        Write-DeploymentFile $File @(
            @{ Name = 'web'; Port = $Ports.web; Instances = 2; Greeting = 'hello' }
            @{ Name = 'api'; Port = $Ports.api; Instances = 1; Greeting = 'hi' }
        ) | Out-Null

        $first = @(Sync-ClusterApp -Path $File)

        $first.Count | Should -Be 2
        $first | ForEach-Object { $_ | Should -BeOfType ([Cluster.SyncResult]) }
        @($first.Action | Select-Object -Unique) | Should -Be @('Started')
        (Invoke-TestRequest -Port $Ports.web).greeting | Should -Be 'hello'
        $pids = @{ web = Get-InstancePid (Get-ClusterApp web); api = Get-InstancePid (Get-ClusterApp api) }
        $pids.web.Count | Should -Be 2

        # The next run of a runbook is another process, whose session differs.
        $env:CLUSTER_TEST_SESSION_ONLY = 'another session'
        $env:OLDPWD = Join-Path $Work 'elsewhere'
        try {
            $second = @(Sync-ClusterApp -Path $File)
        }
        finally {
            Remove-Item Env:CLUSTER_TEST_SESSION_ONLY
        }

        @($second.Action | Select-Object -Unique) | Should -Be @('Unchanged')
        $second | ForEach-Object { $_.Changes.Count | Should -Be 0 }
        Get-InstancePid (Get-ClusterApp web) | Should -Be $pids.web
        Get-InstancePid (Get-ClusterApp api) | Should -Be $pids.api
    }

    It 'reloads with no failed request the app whose environment changed, names the change, and leaves the other alone' {
        $apps = @(
            @{ Name = 'web'; Port = $Ports.web; Instances = 2; Greeting = 'hello' }
            @{ Name = 'api'; Port = $Ports.api; Instances = 1; Greeting = 'hi' }
        )
        Write-DeploymentFile $File $apps | Out-Null
        Sync-ClusterApp -Path $File | Out-Null
        $webBefore = Get-InstancePid (Get-ClusterApp web)
        $apiBefore = Get-InstancePid (Get-ClusterApp api)
        $apps[0].Greeting = 'bonjour'
        Write-DeploymentFile $File $apps | Out-Null
        $load = Start-LoadClient -Port $Ports.web

        $results = @(Sync-ClusterApp -Path $File)

        $outcome = Stop-LoadClient $load
        $outcome.failed | Should -Be 0 -Because "a sync reloads without downtime (errors: $($outcome.errors | ConvertTo-Json -Compress))"
        $outcome.ok | Should -BeGreaterThan 0
        $web = $results | Where-Object Name -EQ 'web'
        $web.Action | Should -Be 'Reloaded'
        $web.Changes.Setting | Should -Be @('Environment.GREETING')
        "$($web.Changes[0])" | Should -Not -Match 'bonjour|hello' -Because 'environment values may be secrets'
        ($results | Where-Object Name -EQ 'api').Action | Should -Be 'Unchanged'
        (Invoke-TestRequest -Port $Ports.web).greeting | Should -Be 'bonjour'
        Get-InstancePid (Get-ClusterApp web) | ForEach-Object { $_ | Should -Not -BeIn $webBefore }
        Get-InstancePid (Get-ClusterApp api) | Should -Be $apiBefore
    }

    It 'scales an app whose instance count alone changed, replacing no instance' {
        $apps = @(@{ Name = 'web'; Port = $Ports.web; Instances = 1; Greeting = 'hello' })
        Write-DeploymentFile $File $apps | Out-Null
        Sync-ClusterApp -Path $File | Out-Null
        $before = Get-InstancePid (Get-ClusterApp web)
        $apps[0].Instances = 3
        Write-DeploymentFile $File $apps | Out-Null

        $result = Sync-ClusterApp -Path $File

        $result.Action | Should -Be 'Scaled'
        $after = Get-InstancePid (Get-ClusterApp web)
        $after.Count | Should -Be 3
        $before[0] | Should -BeIn $after
    }

    It 'updates an app whose settings only the host acts on changed, replacing no instance, and plans no reload for it' {
        $apps = @(@{ Name = 'web'; Port = $Ports.web; Instances = 2; Greeting = 'hello' })
        Write-DeploymentFile $File $apps | Out-Null
        Sync-ClusterApp -Path $File | Out-Null
        $before = Get-InstancePid (Get-ClusterApp web)
        $apps[0].CronRestart = "'0 3 * * *'"
        $apps[0].StopExitCodes = '@(3)'
        Write-DeploymentFile $File $apps | Out-Null

        $plan = Get-WhatIfText { Sync-ClusterApp -Path $File -WhatIf }
        $result = Sync-ClusterApp -Path $File

        $plan | Should -HaveCount 1
        $plan | Should -BeLike '*"Save the new settings, replacing no instance (StopExitCodes: (default) -> 3; CronRestart: (default) -> 0 3 `* `* `*)" on target "web".'
        $plan | Should -Not -Match 'reload'
        $result.Action | Should -Be 'Updated'
        $result.Changes.Setting | Should -Be @('StopExitCodes', 'CronRestart')
        Get-InstancePid $result.App | Should -Be $before
        Get-InstancePid (Get-ClusterApp web) | Should -Be $before
        Export-ClusterApp -Name web | Should -Match "CronRestart = '0 3 \* \* \*'"
        (Sync-ClusterApp -Path $File).Action | Should -Be 'Unchanged'
    }

    It 'with -WhatIf changes nothing' {
        Write-DeploymentFile $File @(@{ Name = 'web'; Port = $Ports.web; Instances = 1; Greeting = 'hello' }) | Out-Null
        Sync-ClusterApp -Path $File | Out-Null
        $before = Get-InstancePid (Get-ClusterApp web)
        Write-DeploymentFile $File @(
            @{ Name = 'web'; Port = $Ports.web; Instances = 1; Greeting = 'changed' }
            @{ Name = 'api'; Port = $Ports.api; Instances = 1; Greeting = 'new' }
        ) | Out-Null

        Sync-ClusterApp -Path $File -WhatIf -Prune | Should -BeNullOrEmpty

        @(Get-ClusterApp).Name | Should -Be @('web')
        Get-InstancePid (Get-ClusterApp web) | Should -Be $before
        (Invoke-TestRequest -Port $Ports.web).greeting | Should -Be 'hello'
    }

    It 'with -Prune removes the apps the file no longer lists, and without it keeps them' {
        Write-DeploymentFile $File @(
            @{ Name = 'web'; Port = $Ports.web; Instances = 1; Greeting = 'hello' }
            @{ Name = 'api'; Port = $Ports.api; Instances = 1; Greeting = 'hi' }
        ) | Out-Null
        Sync-ClusterApp -Path $File | Out-Null
        Write-DeploymentFile $File @(@{ Name = 'web'; Port = $Ports.web; Instances = 1; Greeting = 'hello' }) | Out-Null

        Sync-ClusterApp -Path $File | Out-Null
        @(Get-ClusterApp).Count | Should -Be 2

        $results = @(Sync-ClusterApp -Path $File -Prune)

        ($results | Where-Object Name -EQ 'api').Action | Should -Be 'Removed'
        @(Get-ClusterApp).Name | Should -Be @('web')
    }

    It 'starts an app of the file that was errored' {
        $broken = Join-Path $Work 'crashes.js'
        Set-Content $broken "setTimeout(() => process.exit(3), 200); require('node:http').createServer((q, s) => s.end('up')).listen(Number(process.env.PORT), '127.0.0.1');"
        Set-Content $File "@{ Apps = @( @{ Name = 'flaky'; Path = './crashes.js'; Instances = 1; MaxRestarts = 1; MinUptime = 60000; RestartDelay = 0; Environment = @{ PORT = '$($Ports.web)' } } ) }"
        Sync-ClusterApp -Path $File | Out-Null
        Wait-Until { (Get-ClusterApp flaky).Status -eq 'Errored' } -Because 'the app crashed for good'
        Set-Content $broken "require('node:http').createServer((q, s) => s.end('fixed')).listen(Number(process.env.PORT), '127.0.0.1');"

        $result = Sync-ClusterApp -Path $File

        $result.Action | Should -Be 'Restarted'
        $result.Reason | Should -Match 'errored'
        Invoke-TestRequest -Port $Ports.web | Should -Be 'fixed'
    }

    It 'starts an app of the file that was stopped' {
        Write-DeploymentFile $File @(@{ Name = 'web'; Port = $Ports.web; Instances = 1; Greeting = 'hello' }) | Out-Null
        Sync-ClusterApp -Path $File | Out-Null
        Stop-ClusterApp web

        $result = Sync-ClusterApp -Path $File

        $result.Action | Should -Be 'Restarted'
        $result.App.Status | Should -Be 'Online'
        (Invoke-TestRequest -Port $Ports.web).greeting | Should -Be 'hello'
    }

    It 'reads the values EnvironmentFromSession names from the session when it applies the file, and exports their names only' {
        $env:CLUSTER_TEST_SECRET = 'from-the-runbook'
        try {
            Write-DeploymentFile $File @(@{ Name = 'web'; Port = $Ports.web; Instances = 1; Greeting = 'hello'; EnvironmentFromSession = "@('CLUSTER_TEST_SECRET')" }) | Out-Null
            Sync-ClusterApp -Path $File | Out-Null

            $exported = Export-ClusterApp -Name web

            $exported | Should -Match "EnvironmentFromSession = @\('CLUSTER_TEST_SECRET'\)"
            $exported | Should -Not -Match 'from-the-runbook'

            # A new value in the session is read at the next apply, and the diff names the variable, not its values.
            $env:CLUSTER_TEST_SECRET = 'rotated-by-the-runbook'
            $result = Sync-ClusterApp -Path $File
            $result.Action | Should -Be 'Reloaded'
            $result.Changes.Setting | Should -Be @('Environment.CLUSTER_TEST_SECRET')
            ($result.Changes | Out-String) | Should -Not -Match 'from-the-runbook|rotated-by-the-runbook'
            if ($IsLinux) {
                (& stat -c '%a' (Join-Path $env:CLUSTER_HOME 'state.json')) | Should -Be '600' -Because 'the state file holds the secret'
            }
        }
        finally {
            Remove-Item Env:CLUSTER_TEST_SECRET
        }
    }

    It 'applies its own export and finds nothing to change' {
        Write-DeploymentFile $File @(@{ Name = 'web'; Port = $Ports.web; Instances = 2; Greeting = 'hello'; KillTimeout = 2500; NodeArguments = "@('--max-old-space-size=128')" }) | Out-Null
        Sync-ClusterApp -Path $File | Out-Null
        $before = Get-InstancePid (Get-ClusterApp web)
        $exportFile = Join-Path $Work 'exported.psd1'

        $written = Export-ClusterApp -Path $exportFile

        $written | Should -BeOfType ([IO.FileInfo])
        $data = Import-PowerShellDataFile $exportFile
        $data.Apps[0].KillTimeout | Should -Be 2500
        $data.Apps[0].Environment.GREETING | Should -Be 'hello'
        $data.Apps[0].Environment.Keys | Should -Not -Contain 'PATH' -Because 'inherited session variables are not part of an app'
        (Sync-ClusterApp -Path $exportFile).Action | Should -Be 'Unchanged'
        Get-InstancePid (Get-ClusterApp web) | Should -Be $before
    }

    It 'starts the apps of a PM2 ecosystem file, with its env_production block' {
        $ecosystem = Join-Path $Work 'ecosystem.config.json'
        @{ apps = @(@{ name = 'web'; script = './app.js'; instances = 2; exec_mode = 'cluster'; env = @{ PORT = "$($Ports.web)"; GREETING = 'dev' }; env_production = @{ GREETING = 'prod' }; log_date_format = 'YYYY'; wait_ready = $true; listen_timeout = 1000 }) } |
            ConvertTo-Json -Depth 5 | Set-Content $ecosystem

        $result = Sync-ClusterApp -Path $ecosystem -EnvironmentName production -WarningVariable warnings -WarningAction SilentlyContinue

        $result.Action | Should -Be 'Started'
        $result.App.InstanceCount | Should -Be 2
        (Invoke-TestRequest -Port $Ports.web).greeting | Should -Be 'prod'
        "$warnings" | Should -Match 'log_date_format' -Because 'keys Cluster does not use are named, not silently dropped'
        "$warnings" | Should -Not -Match 'wait_ready|listen_timeout'
        $exported = Export-ClusterApp -Name web
        $exported | Should -Match 'WaitReady = \$true'
        $exported | Should -Match 'ListenTimeout = 1000'
    }

    It 'reads a JavaScript ecosystem file through Node' {
        $ecosystem = Join-Path $Work 'ecosystem.config.js'
        Set-Content $ecosystem "module.exports = { apps: [{ name: 'api', script: './app.js', instances: 1, env: { PORT: '$($Ports.api)', GREETING: 'from js' } }] };"

        $result = Sync-ClusterApp -Path $ecosystem

        $result.Action | Should -Be 'Started'
        (Invoke-TestRequest -Port $Ports.api).greeting | Should -Be 'from js'
    }

    It 'refuses <Case> with <Id>, naming the file, the app and the key, and changes nothing' -ForEach @(
        @{ Case = 'an unknown key'; Id = 'UnknownSetting'; Text = "@{ Apps = @( @{ Name = 'web'; Path = './app.js'; Instancez = 2 } ) }"; Names = @('web', 'Instancez') }
        @{ Case = 'a value of the wrong type'; Id = 'InvalidSettingValue'; Text = "@{ Apps = @( @{ Name = 'web'; Path = './app.js'; Instances = 'many' } ) }"; Names = @('web', 'Instances') }
        @{ Case = 'a name listed twice'; Id = 'DuplicateApp'; Text = "@{ Apps = @( @{ Name = 'web'; Path = './app.js' }, @{ Name = 'WEB'; Path = './app.js' } ) }"; Names = @('web') }
        @{ Case = 'a missing script'; Id = 'ScriptNotFound'; Text = "@{ Apps = @( @{ Name = 'good'; Path = './app.js' }, @{ Name = 'web'; Path = './gone.js' } ) }"; Names = @('web', 'gone.js') }
        @{ Case = 'code in the file'; Id = 'InvalidFile'; Text = "@{ Apps = @( @{ Name = (Get-Date); Path = './app.js' } ) }"; Names = @() }
    ) {
        Set-Content -Path $File -Value $Text

        { Sync-ClusterApp -Path $File -ErrorAction Stop } | Should -Throw -ErrorId "SyncClusterApp$Id*"

        $error[0].CategoryInfo.Category | Should -BeIn 'InvalidData', 'ObjectNotFound'
        $error[0].Exception.Message | Should -Match ([regex]::Escape($File))
        foreach ($name in $Names) { $error[0].Exception.Message | Should -Match ([regex]::Escape($name)) }
        @(Get-ClusterApp) | Should -BeNullOrEmpty -Because 'nothing of a file with a problem is applied'
    }
}

Describe 'Set-ClusterApp' {
    AfterEach { Remove-EveryApp }

    It 'changes the environment by a rolling reload and keeps every setting it does not name' {
        $port = Get-FreePort
        $app = Start-ClusterApp -Path (Join-Path $Work 'app.js') -Name web -Instances 2 -KillTimeout 2500 -Environment @{ PORT = "$port"; GREETING = 'hello' }
        $before = Get-InstancePid $app

        $after = Set-ClusterApp -Name web -Environment @{ GREETING = 'changed' } -PassThru

        $after.Status | Should -Be 'Online'
        $after.InstanceCount | Should -Be 2
        Get-InstancePid $after | ForEach-Object { $_ | Should -Not -BeIn $before }
        (Invoke-TestRequest -Port $port).greeting | Should -Be 'changed'
        (Export-ClusterApp -Name web) | Should -Match 'KillTimeout = 2500'
    }

    It 'refuses a call that names no setting' {
        { Set-ClusterApp -Name web -ErrorAction Stop } | Should -Throw -ErrorId 'SetClusterAppNoSetting*'
    }
}

Describe 'Start-ClusterApp from the pipeline' {
    AfterEach { Remove-EveryApp }

    It 'binds every setting of the objects piped to it by property name' {
        $port = Get-FreePort
        $apps = @([pscustomobject]@{ Path = (Join-Path $Work 'app.js'); Name = 'piped'; Instances = 2; KillTimeout = 2000; Environment = @{ PORT = "$port"; GREETING = 'piped' } }) |
            Start-ClusterApp

        $apps.Name | Should -Be 'piped'
        $apps.InstanceCount | Should -Be 2
        (Invoke-TestRequest -Port $port).greeting | Should -Be 'piped'
        (Export-ClusterApp -Name piped) | Should -Match 'KillTimeout = 2000'
    }
}
