#Requires -Version 7.2
<#
.SYNOPSIS
    Measures the package of build.ps1 -Task Package: its size, the host it carries for each platform (format and
    architecture read from each executable's header), and, for this platform's host, how long it takes from its
    start to a control endpoint that accepts a connection, and its resident memory when idle.
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/Measure-Package.ps1 -PackagePath out/Cluster.0.1.0.nupkg -ModulePath out/Cluster/Cluster.psd1
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $PackagePath,
    [Parameter(Mandatory)] [string] $ModulePath,
    [int] $Starts = 11,
    [int] $IdleSeconds = 3
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$ModulePath = (Resolve-Path $ModulePath).Path
Add-Type -AssemblyName System.IO.Compression.FileSystem

# Format and architecture from the first bytes of an executable: ELF e_machine, PE Machine, Mach-O cputype.
function Get-Header([byte[]] $Bytes) {
    if ($Bytes[0] -eq 0x7F -and $Bytes[1] -eq 0x45 -and $Bytes[2] -eq 0x4C -and $Bytes[3] -eq 0x46) {
        $machine = [BitConverter]::ToUInt16($Bytes, 18)
        return 'ELF', (@{ 0x3E = 'x64'; 0xB7 = 'arm64' }[[int] $machine] ?? "machine $machine")
    }
    if ($Bytes[0] -eq 0x4D -and $Bytes[1] -eq 0x5A) {
        $machine = [BitConverter]::ToUInt16($Bytes, [BitConverter]::ToInt32($Bytes, 0x3C) + 4)
        return 'PE', (@{ 0x8664 = 'x64'; 0xAA64 = 'arm64' }[[int] $machine] ?? "machine $machine")
    }
    if ([BitConverter]::ToUInt32($Bytes, 0) -eq 0xFEEDFACFu) {
        $cpu = [BitConverter]::ToUInt32($Bytes, 4)
        return 'Mach-O', (@{ 0x01000007 = 'x64'; 0x0100000C = 'arm64' }[[int] $cpu] ?? "cpu $cpu")
    }
    'unknown', ''
}

$package = Get-Item $PackagePath
$zip = [System.IO.Compression.ZipFile]::OpenRead($package.FullName)
try {
    $reader = [IO.StreamReader]::new($zip.GetEntry('hosts/hosts.json').Open())
    $list = try { $reader.ReadToEnd() | ConvertFrom-Json -AsHashtable } finally { $reader.Dispose() }
    $rows = foreach ($rid in $list.Keys | Sort-Object) {
        $entry = $zip.Entries | Where-Object { $_.FullName -like "hosts/$rid/*" } | Select-Object -First 1
        if (-not $entry) {
            [pscustomobject]@{ Platform = $rid; Build = $list[$rid].build; Format = '—'; Architecture = '—'; 'Size (MB)' = '—'; Note = "runs the $($list[$rid].runs) host" }
            continue
        }
        $stream = $entry.Open()
        try {
            $head = [byte[]]::new(4096)
            $read = 0
            while ($read -lt $head.Length) { $n = $stream.Read($head, $read, $head.Length - $read); if ($n -eq 0) { break }; $read += $n }
        }
        finally { $stream.Dispose() }
        $format, $architecture = Get-Header $head
        [pscustomobject]@{ Platform = $rid; Build = $list[$rid].build; Format = $format; Architecture = $architecture; 'Size (MB)' = '{0:N1}' -f ($entry.Length / 1MB); Note = '' }
    }
}
finally {
    $zip.Dispose()
}

# This platform's host, from its runtime copy (the module makes it on first use), started the way a service
# manager runs it: in the foreground, timed to the first accepted connection on its control socket.
$benchHome = Join-Path ([IO.Path]::GetTempPath()) ('cl-bench-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
$env:CLUSTER_HOME = $benchHome
$startMs = [System.Collections.Generic.List[double]]::new()
$rssMb = [System.Collections.Generic.List[double]]::new()
try {
    Import-Module $ModulePath -Force
    $runtime = (Get-ClusterHost).Runtime
    Stop-ClusterHost -Confirm:$false
    $exe = Get-ChildItem $runtime -File | Where-Object Name -In 'cluster-host', 'cluster-host.exe' | Select-Object -First 1
    if (-not $exe) { throw "No native host in $runtime (a framework-dependent build is not measured here)." }
    $socket = Join-Path $benchHome 'host.sock'
    for ($i = 0; $i -lt $Starts; $i++) {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $process = Start-Process -FilePath $exe.FullName -ArgumentList '--module', $runtime, '--home', $benchHome, '--foreground' -PassThru
        $connected = $false
        while (-not $connected -and $clock.Elapsed.TotalSeconds -lt 10) {
            $client = [System.Net.Sockets.Socket]::new([System.Net.Sockets.AddressFamily]::Unix, [System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Unspecified)
            try { $client.Connect([System.Net.Sockets.UnixDomainSocketEndPoint]::new($socket)); $connected = $true } catch { Start-Sleep -Milliseconds 1 } finally { $client.Dispose() }
        }
        $clock.Stop()
        if (-not $connected) { throw "The host did not accept a connection on $socket within 10 s." }
        $startMs.Add($clock.Elapsed.TotalMilliseconds)
        if ($i -eq 0 -and $IsLinux) {
            Start-Sleep -Seconds $IdleSeconds
            $line = Get-Content "/proc/$($process.Id)/status" | Where-Object { $_ -like 'VmRSS:*' }
            $rssMb.Add([double] ($line -replace '[^\d]', '') / 1024)
        }
        & kill -TERM $process.Id
        $process.WaitForExit(10000) | Out-Null
    }
}
finally {
    Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -Match '^\d+$' | ForEach-Object {
        $commandLine = try { [IO.File]::ReadAllText("$($_.FullName)/cmdline") } catch { '' }
        if ($commandLine.Contains($benchHome) -and [int] $_.Name -ne $PID) { Stop-Process -Id ([int] $_.Name) -Force -ErrorAction SilentlyContinue }
    }
    Remove-Item $benchHome -Recurse -Force -ErrorAction SilentlyContinue
}

$sorted = @($startMs | Sort-Object)
"## Package $($package.Name): {0:N1} MB" -f ($package.Length / 1MB)
''
$rows | Format-Table -AutoSize | Out-String -Width 200
"This platform's host ($([System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier)): start to first accepted connection, median of $Starts starts {0:N1} ms (min {1:N1}, max {2:N1}); idle RSS after $IdleSeconds s {3:N1} MB" -f `
    $sorted[[int][Math]::Floor($sorted.Count / 2)], $sorted[0], $sorted[-1], ($rssMb.Count ? $rssMb[0] : [double]::NaN)
