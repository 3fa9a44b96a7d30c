# Real PowerShell remoting on loopback for the fleet suite and the fleet benchmark: an sshd of its own with a
# PowerShell subsystem, and "machines" that are SSH sessions to it, each with its own CLUSTER_HOME. Needs sshd
# (openssh-server; .ci/run installs it).

Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1')

# Starts sshd on a free loopback port with its own host key, authorized key and config, and a 'powershell'
# subsystem running the PowerShell this suite runs in. Fails, saying why, when sshd cannot run.
function Start-TestSshServer {
    param([Parameter(Mandatory)] [string] $Folder)
    $sshd = @(Get-Command -Name sshd -CommandType Application -ErrorAction SilentlyContinue).Source + @('/usr/sbin/sshd') |
        Where-Object { $_ -and (Test-Path $_) } | Select-Object -First 1
    if (-not $sshd) {
        throw 'sshd is not installed; this suite needs it for real PowerShell remoting. .ci/run installs it (apt-get install openssh-server).'
    }
    $keygen = (Get-Command -Name ssh-keygen -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
    New-Item -ItemType Directory -Path $Folder | Out-Null
    foreach ($key in 'host_key', 'client_key') {
        & $keygen -q -t ed25519 -N '' -f (Join-Path $Folder $key)
        if ($LASTEXITCODE) { throw "ssh-keygen failed ($LASTEXITCODE) making $key." }
    }
    Copy-Item (Join-Path $Folder 'client_key.pub') (Join-Path $Folder 'authorized_keys')
    # sshd running as root insists on its privilege separation folder.
    if ((id -u) -eq '0' -and -not (Test-Path /run/sshd)) { New-Item -ItemType Directory -Path /run/sshd | Out-Null }

    $dotnet = (Get-Process -Id $PID).Path
    $pwshDll = Join-Path $PSHOME 'pwsh.dll'
    $subsystem = Join-Path $Folder 'pwsh-sshs'
    Set-Content -Path $subsystem -Value "#!/bin/sh`nexec '$dotnet' '$pwshDll' -sshs -NoLogo -NoProfile"
    chmod +x $subsystem
    $port = Get-FreePort
    $config = Join-Path $Folder 'sshd_config'
    Set-Content -Path $config -Value @(
        'ListenAddress 127.0.0.1', "Port $port", "HostKey $Folder/host_key", "PidFile $Folder/sshd.pid",
        "AuthorizedKeysFile $Folder/authorized_keys", 'PubkeyAuthentication yes', 'PasswordAuthentication no',
        'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', "Subsystem powershell $subsystem"
    )
    $log = Join-Path $Folder 'sshd.log'
    $process = Start-Process -FilePath $sshd -ArgumentList '-D', '-e', '-f', $config -RedirectStandardError $log -RedirectStandardOutput (Join-Path $Folder 'sshd.out') -PassThru
    try {
        Wait-Until -Because "sshd to listen on 127.0.0.1:$port" -Condition {
            if ($process.HasExited) { return $true }
            $client = [System.Net.Sockets.TcpClient]::new()
            try { $client.Connect('127.0.0.1', $port); $true } catch { $false } finally { $client.Dispose() }
        }
    }
    catch { }
    if ($process.HasExited -or -not (Select-String -Path $log -Pattern 'Server listening' -Quiet)) {
        Stop-Process -Id $process.Id -Force -ErrorAction SilentlyContinue
        throw "sshd ($sshd) did not start: $(Get-Content -Raw $log -ErrorAction SilentlyContinue)"
    }
    [pscustomobject]@{ Process = $process; Port = $port; Key = Join-Path $Folder 'client_key'; KnownHosts = Join-Path $Folder 'known_hosts' }
}

# Stops a machine's host, closes its session and removes its CLUSTER_HOME with every process that names it.
function Remove-TestMachine {
    param([Parameter(Mandatory)] $Session)
    Invoke-Command -Session $Session -ScriptBlock { if (Get-Module Cluster) { Stop-ClusterHost -Confirm:$false -ErrorAction SilentlyContinue } } -ErrorAction SilentlyContinue
    Remove-PSSession -Session $Session -ErrorAction SilentlyContinue
    Remove-TestClusterHome $Session.ClusterHome
}

function Stop-TestSshServer {
    param([Parameter(Mandatory)] $Ssh)
    Stop-Process -Id $Ssh.Process.Id -Force -ErrorAction SilentlyContinue
    $Ssh.Process.WaitForExit(10000) | Out-Null
}

# A "machine": an SSH session whose Cluster cmdlets talk to a host of its own (its ClusterHome, new unless
# -ClusterHome names one a machine has already), with the module folder -ModulePath (the built module's parent
# folder; none when empty) first on its PSModulePath.
function New-TestMachine {
    param([Parameter(Mandatory)] $Ssh, [Parameter(Mandatory)] [string] $Name, [AllowEmptyString()] [string] $ModulePath, [string] $ClusterHome)
    $session = New-PSSession -HostName 127.0.0.1 -Port $Ssh.Port -UserName (id -un) -KeyFilePath $Ssh.Key -Name $Name -ErrorAction Stop `
        -Options @{ StrictHostKeyChecking = 'no'; UserKnownHostsFile = $Ssh.KnownHosts; LogLevel = 'ERROR' }
    $machineHome = $ClusterHome
    if (-not $machineHome) {
        $machineHome = Join-Path ([IO.Path]::GetTempPath()) ('cl-' + [guid]::NewGuid().ToString('n').Substring(0, 10))
        New-Item -ItemType Directory -Path $machineHome | Out-Null
    }
    Invoke-Command -Session $session -ArgumentList $machineHome, $ModulePath -ScriptBlock {
        param($machineHome, $modulePath)
        $env:CLUSTER_HOME = $machineHome
        if ($modulePath) { $env:PSModulePath = $modulePath + [IO.Path]::PathSeparator + $env:PSModulePath }
    }
    $session | Add-Member -NotePropertyName ClusterHome -NotePropertyValue $machineHome -PassThru
}

Export-ModuleMember -Function Start-TestSshServer, Stop-TestSshServer, New-TestMachine, Remove-TestMachine
