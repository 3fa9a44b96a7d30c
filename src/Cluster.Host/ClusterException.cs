namespace Cluster.Host;

/// <summary>
/// A failure to report to the caller: a stable code (the cmdlet makes its error id from it), the name of a
/// PowerShell ErrorCategory, and a message that says what happened and what to do.
/// </summary>
internal sealed class ClusterException : Exception
{
    public ClusterException(string code, string category, string message, string? target = null)
        : base(message)
    {
        Code = code;
        Category = category;
        Target = target;
    }

    public string Code { get; }

    public string Category { get; }

    public string? Target { get; }
}

/// <summary>The names of the ErrorCategory values the host uses (it does not reference PowerShell).</summary>
internal static class ErrorCategories
{
    public const string InvalidArgument = "InvalidArgument";
    public const string ObjectNotFound = "ObjectNotFound";
    public const string ResourceExists = "ResourceExists";
    public const string ResourceBusy = "ResourceBusy";
    public const string NotInstalled = "NotInstalled";
    public const string InvalidOperation = "InvalidOperation";
    public const string OperationStopped = "OperationStopped";
    public const string LimitsExceeded = "LimitsExceeded";
    public const string InvalidData = "InvalidData";
    public const string InvalidResult = "InvalidResult";
    public const string ProtocolError = "ProtocolError";
    public const string WriteError = "WriteError";
}
