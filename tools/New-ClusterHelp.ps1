#Requires -Version 7.0
<#
.SYNOPSIS
    Turns the PlatyPS-format markdown in docs/<culture> into the help files PowerShell reads.
.DESCRIPTION
    Cmdlet pages (PlatyPS schema 2.0.0) become one MAML file per 'external help file' named in their front
    matter (Cluster.dll-Help.xml); each about_*.md page becomes an about_*.help.txt wrapped to 80 columns.
    It reads the same markdown New-ExternalHelp reads, for machines without PlatyPS, and it is strict: a page
    that PlatyPS would misread (no SYNOPSIS, a parameter without its yaml block, a syntax naming an
    undocumented parameter, ...) stops the build with the file and what is wrong.
.EXAMPLE
    ./tools/New-ClusterHelp.ps1 -DocsPath ./docs/en-US -OutputPath ./out/Cluster/en-US
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [Alias('SourcePath')]
    [string] $DocsPath,

    [Parameter(Mandatory)]
    [string] $OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$TextWidth = 80
$CmdletSections = @('SYNOPSIS', 'SYNTAX', 'DESCRIPTION', 'EXAMPLES', 'PARAMETERS', 'INPUTS', 'OUTPUTS', 'NOTES', 'RELATED LINKS')
$RequiredCmdletSections = @('SYNOPSIS', 'SYNTAX', 'DESCRIPTION', 'EXAMPLES', 'PARAMETERS')
$ParameterKeys = @('Type', 'Parameter Sets', 'Aliases', 'Required', 'Position', 'Default value', 'Accept pipeline input', 'Accept wildcard characters')
$AboutSections = @('SHORT DESCRIPTION', 'LONG DESCRIPTION')

$Namespaces = @{
    msh     = 'http://msh'
    maml    = 'http://schemas.microsoft.com/maml/2004/10'
    command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
    dev     = 'http://schemas.microsoft.com/maml/dev/2004/10'
    MSHelp  = 'http://msdn.microsoft.com/mshelp'
}

#region Markdown

function Stop-Conversion([string] $File, [string] $Message) {
    throw "$([IO.Path]::GetFileName($File)): $Message"
}

# Splits a page into its front matter (a dictionary) and its body lines.
function Read-Page([string] $File) {
    $lines = @((Get-Content -LiteralPath $File -Encoding utf8) -replace '\s+$', '')
    $front = [ordered]@{}
    $start = 0
    if ($lines.Count -gt 0 -and $lines[0] -eq '---') {
        $end = [Array]::IndexOf($lines, '---', 1)
        if ($end -lt 0) { Stop-Conversion $File 'the front matter that opens with --- is never closed.' }
        foreach ($line in $lines[1..($end - 1)]) {
            if ($line -eq '') { continue }
            if ($line -notmatch '^([^:]+):\s*(.*)$') { Stop-Conversion $File "the front matter line '$line' is not 'key: value'." }
            $front[$Matches[1].Trim()] = $Matches[2].Trim()
        }
        $start = $end + 1
    }
    [pscustomobject]@{ File = $File; Front = $front; Blocks = @(ConvertTo-Block $File @(Select-From $lines $start)) }
}

# Markdown lines -> headings, fenced code blocks and paragraphs (runs of non-blank lines).
function ConvertTo-Block([string] $File, [string[]] $Lines) {
    $i = 0
    while ($i -lt $Lines.Count) {
        $line = $Lines[$i]
        if ($line -match '^(#{1,6})\s+(.+?)\s*$') {
            [pscustomobject]@{ Kind = 'Heading'; Level = $Matches[1].Length; Text = $Matches[2]; Lines = @() }
            $i++
        }
        elseif ($line -match '^\s*```\s*([\w-]*)\s*$') {
            $language = $Matches[1]
            $indent = $line.Length - $line.TrimStart().Length
            $code = [Collections.Generic.List[string]]::new()
            $i++
            while ($i -lt $Lines.Count -and $Lines[$i] -notmatch '^\s*```\s*$') {
                $text = $Lines[$i]
                $code.Add($(if ($text.Length -ge $indent -and $text.Substring(0, $indent).Trim() -eq '') { $text.Substring($indent) } else { $text.TrimStart() }))
                $i++
            }
            if ($i -ge $Lines.Count) { Stop-Conversion $File "a code block (line $($i - $code.Count)) is never closed with ``````." }
            [pscustomobject]@{ Kind = 'Code'; Level = 0; Text = $language; Lines = $code.ToArray() }
            $i++
        }
        elseif ($line.Trim() -eq '') {
            $i++
        }
        else {
            $paragraph = [Collections.Generic.List[string]]::new()
            while ($i -lt $Lines.Count -and $Lines[$i].Trim() -ne '' -and $Lines[$i] -notmatch '^(#{1,6})\s' -and $Lines[$i] -notmatch '^\s*```') {
                $paragraph.Add($Lines[$i])
                $i++
            }
            [pscustomobject]@{ Kind = 'Paragraph'; Level = 0; Text = ''; Lines = $paragraph.ToArray() }
        }
    }
}

# Groups blocks under the headings of one level: @{ Title; Blocks }, in order; blocks before the first
# heading of that level are returned with an empty title.
function Split-Section([object[]] $Blocks, [int] $Level) {
    $sections = [Collections.Generic.List[object]]::new()
    $current = [pscustomobject]@{ Title = ''; Blocks = [Collections.Generic.List[object]]::new() }
    foreach ($block in $Blocks) {
        if ($block.Kind -eq 'Heading' -and $block.Level -eq $Level) {
            if ($current.Title -ne '' -or $current.Blocks.Count -gt 0) { $sections.Add($current) }
            $current = [pscustomobject]@{ Title = $block.Text; Blocks = [Collections.Generic.List[object]]::new() }
        }
        else {
            $current.Blocks.Add($block)
        }
    }
    if ($current.Title -ne '' -or $current.Blocks.Count -gt 0) { $sections.Add($current) }
    $sections.ToArray()
}

# Inline markdown -> plain text: code spans and emphasis lose their marks, links keep their text,
# backslash escapes are undone (outside code spans, where markdown keeps backslashes as they are).
function ConvertTo-PlainText([string] $Text) {
    $parts = [regex]::Split($Text, '(`[^`]+`)')
    $plain = foreach ($part in $parts) {
        if ($part.Length -ge 2 -and $part.StartsWith('`') -and $part.EndsWith('`')) {
            $part.Substring(1, $part.Length - 2)
            continue
        }
        $part = [regex]::Replace($part, '\[([^\]]+)\]\(([^)]*)\)', '$1')
        $part = [regex]::Replace($part, '(\*\*|__)(.+?)\1', '$2')
        $part = [regex]::Replace($part, '(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])', '$1')
        $part -replace '\\([\\`*_{}\[\]()#+\-.!<>|])', '$1'
    }
    -join $plain
}

# The items of an array from a position on; none past its end.
function Select-From([object[]] $Items, [int] $Start) {
    if ($Start -lt $Items.Count) { $Items[$Start..($Items.Count - 1)] }
}

# 'a, b, c' -> its items, trimmed; none for an empty value.
function Split-List([string] $Value) {
    foreach ($item in $Value.Split(',')) {
        if ($item.Trim()) { $item.Trim() }
    }
}

# A paragraph block -> its text paragraphs: a list item each, otherwise the lines joined into one.
function ConvertTo-Paragraph([object] $Block) {
    $items = [Collections.Generic.List[string]]::new()
    $current = $null
    foreach ($line in $Block.Lines) {
        if ($line -match '^\s*([-*+]|\d+\.)\s+(.*)$') {
            if ($null -ne $current) { $items.Add($current) }
            $current = "$($Matches[1] -replace '[*+]', '-') $($Matches[2].Trim())"
        }
        elseif ($line.TrimStart().StartsWith('|')) {
            if ($null -ne $current) { $items.Add($current) }
            $items.Add($line.Trim())
            $current = $null
        }
        elseif ($null -eq $current) {
            $current = $line.Trim()
        }
        else {
            $current += ' ' + $line.Trim()
        }
    }
    if ($null -ne $current) { $items.Add($current) }
    foreach ($item in $items) { ConvertTo-PlainText $item }
}

# The text of a run of blocks, as paragraphs; code blocks stay as they are (one paragraph, its lines kept).
function Get-SectionParagraph([object[]] $Blocks, [string] $File, [string] $Where) {
    foreach ($block in $Blocks) {
        switch ($block.Kind) {
            'Paragraph' { ConvertTo-Paragraph $block }
            'Code' { (@($block.Lines).ForEach({ '    ' + $_ })) -join "`n" }
            'Heading' { Stop-Conversion $File "$Where has a heading '$($block.Text)' where text belongs." }
        }
    }
}

#endregion

#region Cmdlet pages

function Read-CmdletPage([object] $Page) {
    $file = $Page.File
    foreach ($key in 'external help file', 'Module Name', 'schema') {
        if (-not $Page.Front.Contains($key) -or -not $Page.Front[$key]) { Stop-Conversion $file "the front matter has no '$key'." }
    }
    if ($Page.Front['schema'] -ne '2.0.0') { Stop-Conversion $file "schema '$($Page.Front['schema'])' is not PlatyPS schema 2.0.0." }

    $top = @(Split-Section $Page.Blocks 1)
    if ($top.Count -ne 1 -or -not $top[0].Title) { Stop-Conversion $file 'a cmdlet page has exactly one level-1 heading: the cmdlet name.' }
    $name = $top[0].Title
    if ($name -ne [IO.Path]::GetFileNameWithoutExtension($file)) { Stop-Conversion $file "the page is about '$name' but its file is named for another command." }
    if ($name -notmatch '^(\w+)-(\w+)$') { Stop-Conversion $file "'$name' is not a Verb-Noun cmdlet name." }
    $verb, $noun = $Matches[1], $Matches[2]

    $sections = @{}
    $order = [Collections.Generic.List[string]]::new()
    foreach ($section in (Split-Section $top[0].Blocks 2)) {
        if (-not $section.Title) { Stop-Conversion $file "there is text before '## SYNOPSIS'." }
        if ($section.Title -notin $CmdletSections) { Stop-Conversion $file "'## $($section.Title)' is not a section of a PlatyPS cmdlet page ($($CmdletSections -join ', '))." }
        if ($sections.ContainsKey($section.Title)) { Stop-Conversion $file "'## $($section.Title)' appears twice." }
        $sections[$section.Title] = $section.Blocks
        $order.Add($section.Title)
    }
    foreach ($required in $RequiredCmdletSections) {
        if (-not $sections.ContainsKey($required)) { Stop-Conversion $file "the page has no '## $required'." }
    }
    $expectedOrder = @($CmdletSections.Where({ $order.Contains($_) }))
    if (($order -join '|') -ne ($expectedOrder -join '|')) { Stop-Conversion $file "the sections are out of order; PlatyPS expects $($CmdletSections -join ', ')." }

    $synopsis = @(Get-SectionParagraph $sections['SYNOPSIS'] $file 'SYNOPSIS')
    if ($synopsis.Count -eq 0 -or -not ($synopsis -join '').Trim()) { Stop-Conversion $file '## SYNOPSIS is empty.' }
    $description = @(Get-SectionParagraph $sections['DESCRIPTION'] $file 'DESCRIPTION')
    if ($description.Count -eq 0) { Stop-Conversion $file '## DESCRIPTION is empty.' }

    $parameters = Read-ParameterSection $file $sections['PARAMETERS']
    [pscustomobject]@{
        File        = $file
        HelpFile    = $Page.Front['external help file']
        OnlineUri   = if ($Page.Front.Contains('online version')) { $Page.Front['online version'] } else { '' }
        Name        = $name
        Verb        = $verb
        Noun        = $noun
        Synopsis    = $synopsis
        Description = $description
        Syntax      = @(Read-SyntaxSection $file $name $sections['SYNTAX'] $parameters)
        Examples    = @(Read-ExampleSection $file $sections['EXAMPLES'])
        Parameters  = $parameters
        Inputs      = @(Read-TypeSection $file 'INPUTS' $(if ($sections.ContainsKey('INPUTS')) { $sections['INPUTS'] } else { @() }))
        Outputs     = @(Read-TypeSection $file 'OUTPUTS' $(if ($sections.ContainsKey('OUTPUTS')) { $sections['OUTPUTS'] } else { @() }))
        Notes       = @(if ($sections.ContainsKey('NOTES')) { Get-SectionParagraph $sections['NOTES'] $file 'NOTES' })
        Links       = @(Read-LinkSection $file $(if ($sections.ContainsKey('RELATED LINKS')) { $sections['RELATED LINKS'] } else { @() }))
    }
}

function Read-ParameterSection([string] $File, [object[]] $Blocks) {
    $parameters = [ordered]@{}
    $sawCommon = $false
    foreach ($section in (Split-Section $Blocks 3)) {
        if (-not $section.Title) {
            if (@($section.Blocks.Where({ $_.Kind -ne 'Paragraph' })).Count) { Stop-Conversion $File '## PARAMETERS has content before its first ### heading.' }
            continue
        }
        if ($section.Title -eq 'CommonParameters') { $sawCommon = $true; continue }
        if ($section.Title -notmatch '^-(\w+)$') { Stop-Conversion $File "'### $($section.Title)' under PARAMETERS is neither '### -Name' nor '### CommonParameters'." }
        $name = $Matches[1]
        if ($parameters.Contains($name)) { Stop-Conversion $File "parameter -$name is documented twice." }

        $yaml = @($section.Blocks.Where({ $_.Kind -eq 'Code' -and $_.Text -eq 'yaml' }))
        if ($yaml.Count -ne 1) { Stop-Conversion $File "parameter -$name needs exactly one ``````yaml block (it has $($yaml.Count))." }
        $fields = @{}
        foreach ($line in $yaml[0].Lines) {
            if ($line.Trim() -eq '') { continue }
            if ($line -notmatch '^([A-Za-z ]+):\s*(.*)$') { Stop-Conversion $File "parameter -${name}: the yaml line '$line' is not 'Key: value'." }
            $fields[$Matches[1].Trim()] = $Matches[2].Trim()
        }
        foreach ($key in $ParameterKeys) {
            if (-not $fields.ContainsKey($key)) { Stop-Conversion $File "parameter -${name}: the yaml block has no '$key'." }
        }
        if (-not $fields['Type']) { Stop-Conversion $File "parameter -${name} has no Type." }
        foreach ($key in 'Required', 'Accept wildcard characters') {
            if ($fields[$key] -notin 'True', 'False') { Stop-Conversion $File "parameter -${name}: '$key' must be True or False, not '$($fields[$key])'." }
        }
        if ($fields['Position'] -notmatch '^(Named|\d+)$') { Stop-Conversion $File "parameter -${name}: Position must be Named or a number, not '$($fields['Position'])'." }
        if ($fields['Accept pipeline input'] -notmatch '^(False|True \((ByValue|ByPropertyName)(, (ByValue|ByPropertyName))?\))$') {
            Stop-Conversion $File "parameter -${name}: 'Accept pipeline input' must be False or True (ByValue / ByPropertyName), not '$($fields['Accept pipeline input'])'."
        }
        $description = @(Get-SectionParagraph @($section.Blocks.Where({ -not ($_.Kind -eq 'Code' -and $_.Text -eq 'yaml') })) $File "parameter -$name")
        if ($description.Count -eq 0) { Stop-Conversion $File "parameter -$name has no description." }

        $sets = @(Split-List $fields['Parameter Sets'])
        $parameters[$name] = [pscustomobject]@{
            Name           = $name
            Description    = $description
            Type           = $fields['Type']
            Sets           = $sets
            Aliases        = @(Split-List $fields['Aliases'])
            Required       = $fields['Required'] -eq 'True'
            Position       = $fields['Position']
            Default        = if ($fields['Default value']) { $fields['Default value'] } else { 'None' }
            PipelineInput  = $fields['Accept pipeline input']
            Globbing       = $fields['Accept wildcard characters'] -eq 'True'
            AcceptedValues = @(if ($fields.ContainsKey('Accepted values')) { Split-List $fields['Accepted values'] })
        }
    }
    if (-not $sawCommon) { Stop-Conversion $File '## PARAMETERS has no ### CommonParameters.' }
    $parameters
}

function Read-SyntaxSection([string] $File, [string] $Name, [object[]] $Blocks, $Parameters) {
    $used = [Collections.Generic.HashSet[string]]::new([StringComparer]::OrdinalIgnoreCase)
    $count = 0
    foreach ($section in (Split-Section $Blocks 3)) {
        $code = @($section.Blocks.Where({ $_.Kind -eq 'Code' }))
        if (-not $section.Title -and $code.Count -eq 0) { continue }
        if ($code.Count -ne 1) { Stop-Conversion $File "each parameter set under ## SYNTAX needs one code block ('$($section.Title)' has $($code.Count))." }
        $line = ($code[0].Lines -join ' ').Trim()
        if (-not $line.StartsWith("$Name ") -and $line -ne $Name) { Stop-Conversion $File "the syntax '$line' does not start with '$Name'." }
        $setName = $section.Title -replace '\s*\(Default\)$', ''
        $names = @(foreach ($match in [regex]::Matches($line, '(?<=[\[\s])-(\w+)')) { $match.Groups[1].Value })
        foreach ($parameterName in $names) {
            if (-not $Parameters.Contains($parameterName)) { Stop-Conversion $File "the syntax names -$parameterName, which has no '### -$parameterName' under PARAMETERS." }
            $parameter = $Parameters[$parameterName]
            if ($setName -and $setName -ne '__AllParameterSets' -and $parameter.Sets -notcontains '(All)' -and $parameter.Sets -notcontains $setName) {
                Stop-Conversion $File "the syntax of set '$setName' names -$parameterName, whose Parameter Sets do not include it."
            }
            [void] $used.Add($parameterName)
        }
        $count++
        [pscustomobject]@{ Set = $setName; Parameters = @(foreach ($parameterName in $names) { $Parameters[$parameterName] }) }
    }
    if ($count -eq 0) { Stop-Conversion $File '## SYNTAX has no code block.' }
    foreach ($parameterName in $Parameters.Keys) {
        if (-not $used.Contains($parameterName)) { Stop-Conversion $File "-$parameterName is documented but appears in no syntax under ## SYNTAX." }
    }
}

function Read-ExampleSection([string] $File, [object[]] $Blocks) {
    $examples = @(@(Split-Section $Blocks 3).Where({ $_.Title }))
    if ($examples.Count -eq 0) { Stop-Conversion $File '## EXAMPLES has no ### example.' }
    foreach ($example in $examples) {
        $code = @($example.Blocks.Where({ $_.Kind -eq 'Code' }))
        if ($code.Count -eq 0) { Stop-Conversion $File "the example '$($example.Title)' has no code block." }
        $blocks = @($example.Blocks)
        if ($blocks[0].Kind -ne 'Code') {
            Stop-Conversion $File "the example '$($example.Title)' has text before its code; the code comes first, then what it does."
        }
        $last = [Array]::LastIndexOf([object[]] $blocks, $code[-1])
        $remarks = @(Get-SectionParagraph @(Select-From $blocks ($last + 1)) $File "the example '$($example.Title)'")
        if ($remarks.Count -eq 0) { Stop-Conversion $File "the example '$($example.Title)' does not say what it does (no text after its code)." }
        [pscustomobject]@{
            Title   = $example.Title
            Code    = (@($code.ForEach({ $_.Lines -join "`n" })) -join "`n`n")
            Remarks = $remarks
        }
    }
}

function Read-TypeSection([string] $File, [string] $Section, [object[]] $Blocks) {
    foreach ($entry in (Split-Section $Blocks 3)) {
        if (-not $entry.Title) {
            if ($entry.Blocks.Count) { Stop-Conversion $File "## $Section has text before its first ### type heading." }
            continue
        }
        [pscustomobject]@{ Type = (ConvertTo-PlainText $entry.Title); Description = @(Get-SectionParagraph $entry.Blocks $File "## $Section") }
    }
}

function Read-LinkSection([string] $File, [object[]] $Blocks) {
    foreach ($block in $Blocks) {
        if ($block.Kind -ne 'Paragraph') { Stop-Conversion $File '## RELATED LINKS holds only links.' }
        foreach ($line in $block.Lines) {
            if ($line -notmatch '^\s*(?:[-*]\s+)?\[([^\]]+)\]\(([^)]*)\)\s*$') { Stop-Conversion $File "the related link '$line' is not '[text](uri)'." }
            [pscustomobject]@{ Text = $Matches[1]; Uri = $Matches[2] }
        }
    }
}

#endregion

#region MAML

function Write-Para([Xml.XmlWriter] $Writer, [string[]] $Paragraphs) {
    foreach ($paragraph in $Paragraphs) {
        $Writer.WriteElementString('maml', 'para', $Namespaces.maml, $paragraph)
    }
}

function Write-Description([Xml.XmlWriter] $Writer, [string[]] $Paragraphs) {
    $Writer.WriteStartElement('maml', 'description', $Namespaces.maml)
    Write-Para $Writer $Paragraphs
    $Writer.WriteEndElement()
}

function Write-DevType([Xml.XmlWriter] $Writer, [string] $TypeName) {
    $Writer.WriteStartElement('dev', 'type', $Namespaces.dev)
    $Writer.WriteElementString('maml', 'name', $Namespaces.maml, $TypeName)
    $Writer.WriteElementString('maml', 'uri', $Namespaces.maml, '')
    $Writer.WriteEndElement()
}

function Write-Parameter([Xml.XmlWriter] $Writer, [object] $Parameter, [switch] $InSyntax) {
    $isSwitch = $Parameter.Type -eq 'SwitchParameter'
    $Writer.WriteStartElement('command', 'parameter', $Namespaces.command)
    $Writer.WriteAttributeString('required', $Parameter.Required.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('variableLength', $Parameter.Type.EndsWith('[]').ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('globbing', $Parameter.Globbing.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('pipelineInput', $Parameter.PipelineInput)
    $Writer.WriteAttributeString('position', $(if ($Parameter.Position -eq 'Named') { 'named' } else { $Parameter.Position }))
    $Writer.WriteAttributeString('aliases', $(if ($Parameter.Aliases.Count) { $Parameter.Aliases -join ', ' } else { 'none' }))
    $Writer.WriteElementString('maml', 'name', $Namespaces.maml, $Parameter.Name)
    Write-Description $Writer $Parameter.Description
    if ($InSyntax -and $Parameter.AcceptedValues.Count) {
        $Writer.WriteStartElement('command', 'parameterValueGroup', $Namespaces.command)
        foreach ($value in $Parameter.AcceptedValues) {
            $Writer.WriteStartElement('command', 'parameterValue', $Namespaces.command)
            $Writer.WriteAttributeString('required', 'false')
            $Writer.WriteAttributeString('command', 'variableLength', $Namespaces.command, 'false')
            $Writer.WriteString($value)
            $Writer.WriteEndElement()
        }
        $Writer.WriteEndElement()
    }
    elseif (-not ($InSyntax -and $isSwitch)) {
        $Writer.WriteStartElement('command', 'parameterValue', $Namespaces.command)
        $Writer.WriteAttributeString('required', $(if ($isSwitch) { 'false' } else { 'true' }))
        $Writer.WriteAttributeString('variableLength', 'false')
        $Writer.WriteString($Parameter.Type)
        $Writer.WriteEndElement()
    }
    Write-DevType $Writer $Parameter.Type
    $Writer.WriteElementString('dev', 'defaultValue', $Namespaces.dev, $Parameter.Default)
    $Writer.WriteEndElement()
}

function Write-Command([Xml.XmlWriter] $Writer, [object] $Command) {
    $Writer.WriteStartElement('command', 'command', $Namespaces.command)
    foreach ($prefix in 'maml', 'command', 'dev', 'MSHelp') {
        $Writer.WriteAttributeString('xmlns', $prefix, $null, $Namespaces[$prefix])
    }

    $Writer.WriteStartElement('command', 'details', $Namespaces.command)
    $Writer.WriteElementString('command', 'name', $Namespaces.command, $Command.Name)
    $Writer.WriteElementString('command', 'verb', $Namespaces.command, $Command.Verb)
    $Writer.WriteElementString('command', 'noun', $Namespaces.command, $Command.Noun)
    Write-Description $Writer $Command.Synopsis
    $Writer.WriteEndElement()

    Write-Description $Writer $Command.Description

    $Writer.WriteStartElement('command', 'syntax', $Namespaces.command)
    foreach ($syntax in $Command.Syntax) {
        $Writer.WriteStartElement('command', 'syntaxItem', $Namespaces.command)
        $Writer.WriteElementString('maml', 'name', $Namespaces.maml, $Command.Name)
        foreach ($parameter in $syntax.Parameters) { Write-Parameter $Writer $parameter -InSyntax }
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'parameters', $Namespaces.command)
    foreach ($parameter in $Command.Parameters.Values) { Write-Parameter $Writer $parameter }
    $Writer.WriteEndElement()

    foreach ($kind in @(@('inputTypes', 'inputType', $Command.Inputs), @('returnValues', 'returnValue', $Command.Outputs))) {
        $Writer.WriteStartElement('command', $kind[0], $Namespaces.command)
        foreach ($entry in $kind[2]) {
            $Writer.WriteStartElement('command', $kind[1], $Namespaces.command)
            Write-DevType $Writer $entry.Type
            Write-Description $Writer $entry.Description
            $Writer.WriteEndElement()
        }
        $Writer.WriteEndElement()
    }

    $Writer.WriteStartElement('maml', 'alertSet', $Namespaces.maml)
    $Writer.WriteStartElement('maml', 'alert', $Namespaces.maml)
    Write-Para $Writer $Command.Notes
    $Writer.WriteEndElement()
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'examples', $Namespaces.command)
    foreach ($example in $Command.Examples) {
        $Writer.WriteStartElement('command', 'example', $Namespaces.command)
        $Writer.WriteElementString('maml', 'title', $Namespaces.maml, "--------- $($example.Title) ---------")
        $Writer.WriteElementString('dev', 'code', $Namespaces.dev, $example.Code)
        $Writer.WriteStartElement('dev', 'remarks', $Namespaces.dev)
        Write-Para $Writer (@($example.Remarks) + '')
        $Writer.WriteEndElement()
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'relatedLinks', $Namespaces.command)
    $links = @($Command.Links)
    if ($Command.OnlineUri) { $links = @([pscustomobject]@{ Text = 'Online Version:'; Uri = $Command.OnlineUri }) + $links }
    foreach ($link in $links) {
        $Writer.WriteStartElement('maml', 'navigationLink', $Namespaces.maml)
        $Writer.WriteElementString('maml', 'linkText', $Namespaces.maml, $link.Text)
        # A link to another page of these docs means nothing to Get-Help; only web addresses are kept.
        $Writer.WriteElementString('maml', 'uri', $Namespaces.maml, $(if ($link.Uri -match '^https?://') { $link.Uri } else { '' }))
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteEndElement()
}

function Write-Maml([string] $Path, [object[]] $Commands) {
    $settings = [Xml.XmlWriterSettings]::new()
    $settings.Indent = $true
    $settings.Encoding = [Text.UTF8Encoding]::new($false)
    $settings.NewLineChars = "`n"
    $writer = [Xml.XmlWriter]::Create($Path, $settings)
    try {
        $writer.WriteStartDocument()
        $writer.WriteStartElement('helpItems', $Namespaces.msh)
        $writer.WriteAttributeString('schema', 'maml')
        foreach ($command in $Commands) { Write-Command $writer $command }
        $writer.WriteEndElement()
        $writer.WriteEndDocument()
    }
    finally {
        $writer.Dispose()
    }
}

#endregion

#region About topics

# Words -> lines of at most $TextWidth columns: the first starts with $First, the others with $Rest.
function Format-Wrapped([string] $Text, [string] $First, [string] $Rest) {
    $lines = [Collections.Generic.List[string]]::new()
    $line = $First
    $empty = $true
    foreach ($word in $Text.Split([char[]] " `t`r`n", [StringSplitOptions]::RemoveEmptyEntries)) {
        if (-not $empty -and $line.Length + 1 + $word.Length -gt $TextWidth) {
            $lines.Add($line)
            $line = $Rest + $word
        }
        else {
            $line = if ($empty) { $line + $word } else { "$line $word" }
        }
        $empty = $false
    }
    $lines.Add($line)
    $lines
}

function ConvertTo-AboutText([object] $Page) {
    $file = $Page.File
    $topic = [IO.Path]::GetFileNameWithoutExtension($file) -replace '\.help$', ''
    $blocks = $Page.Blocks
    if ($blocks.Count -lt 2 -or $blocks[0].Kind -ne 'Heading' -or $blocks[0].Level -ne 1 -or $blocks[1].Kind -ne 'Heading' -or $blocks[1].Level -ne 2 -or $blocks[1].Text -ne $topic) {
        Stop-Conversion $file "an about page opens with '# <Module>' and '## $topic'."
    }

    $sections = @(Split-Section @(Select-From $blocks 2) 1)
    foreach ($required in $AboutSections) {
        if ($sections.Title -notcontains $required) { Stop-Conversion $file "the page has no '# $required'." }
    }
    if ($sections[0].Title -ne 'SHORT DESCRIPTION') { Stop-Conversion $file "'# SHORT DESCRIPTION' comes first." }

    $out = [Collections.Generic.List[string]]::new()
    $out.Add('TOPIC')
    $out.Add("    $topic")
    foreach ($section in $sections) {
        if (-not $section.Title) { Stop-Conversion $file 'there is text outside a # section.' }
        if ($section.Title -cmatch '[a-z]') { Stop-Conversion $file "'# $($section.Title)': top-level about headings are upper case." }
        if (@($section.Blocks.Where({ $_.Kind -ne 'Heading' })).Count -eq 0) { Stop-Conversion $file "'# $($section.Title)' is empty." }
        $out.Add('')
        $out.Add($section.Title)
        $previous = 'Heading'
        foreach ($block in $section.Blocks) {
            switch ($block.Kind) {
                'Heading' {
                    $out.Add('')
                    $indent = ' ' * [Math]::Min(4, 2 * ($block.Level - 1))
                    $out.AddRange([string[]] @(Format-Wrapped (ConvertTo-PlainText $block.Text).ToUpperInvariant() $indent $indent))
                    $previous = 'Heading'
                }
                'Paragraph' {
                    foreach ($paragraph in (ConvertTo-Paragraph $block)) {
                        $isItem = $paragraph -match '^(-|\d+\.) (.*)$'
                        if ($previous -ne 'Heading' -and -not ($isItem -and $previous -eq 'Item')) { $out.Add('') }
                        if ($isItem) {
                            $bullet = $Matches[1] + ' '
                            $out.AddRange([string[]] @(Format-Wrapped $Matches[2] "    $bullet" (' ' * (4 + $bullet.Length))))
                            $previous = 'Item'
                        }
                        elseif ($paragraph.StartsWith('|')) {
                            $out.Add("    $paragraph")
                            $previous = 'Item'
                        }
                        else {
                            $out.AddRange([string[]] @(Format-Wrapped $paragraph '    ' '    '))
                            $previous = 'Paragraph'
                        }
                    }
                }
                'Code' {
                    if ($previous -ne 'Heading') { $out.Add('') }
                    foreach ($line in $block.Lines) {
                        $text = if ($line) { "        $line" } else { '' }
                        if ($text.Length -gt $TextWidth) { Stop-Conversion $file "a code line is wider than $TextWidth columns once indented: '$line'." }
                        $out.Add($text)
                    }
                    $previous = 'Code'
                }
            }
        }
    }
    ($out -join [Environment]::NewLine) + [Environment]::NewLine
}

#endregion

if (-not (Test-Path -LiteralPath $DocsPath -PathType Container)) { throw "The docs folder '$DocsPath' does not exist." }
$pages = @(Get-ChildItem -LiteralPath $DocsPath -Filter '*.md' -File | Sort-Object Name)
if ($pages.Count -eq 0) { throw "The docs folder '$DocsPath' holds no markdown pages." }
$null = New-Item -ItemType Directory -Path $OutputPath -Force

$commands = [Collections.Generic.List[object]]::new()
foreach ($file in $pages) {
    $page = Read-Page $file.FullName
    if ($file.BaseName -like 'about_*') {
        $topic = $file.BaseName -replace '\.help$', ''
        $target = Join-Path $OutputPath "$topic.help.txt"
        [IO.File]::WriteAllText($target, (ConvertTo-AboutText $page), [Text.UTF8Encoding]::new($false))
        Write-Verbose "Wrote $target"
    }
    else {
        $commands.Add((Read-CmdletPage $page))
    }
}

foreach ($group in ($commands | Group-Object HelpFile)) {
    $target = Join-Path $OutputPath $group.Name
    Write-Maml $target @($group.Group | Sort-Object Name)
    Write-Verbose "Wrote $target ($($group.Count) commands)"
}
