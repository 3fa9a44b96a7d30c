namespace Cluster.Host;

/// <summary>
/// The timeouts of start, reload and stop, each resolved in one place from, in order: the cmdlet's parameter,
/// the variable in the calling session, the variable in the app's own environment, the default.
/// </summary>
internal static class Timeouts
{
    public const string GracefulTimeoutVariable = "PM2_GRACEFUL_TIMEOUT";
    public const string ListenTimeoutVariable = "PM2_GRACEFUL_LISTEN_TIMEOUT";
    public const string KillTimeoutVariable = "PM2_KILL_TIMEOUT";

    public static readonly TimeSpan DefaultListenTimeout = TimeSpan.FromMilliseconds(3000);
    public static readonly TimeSpan DefaultGracefulTimeout = TimeSpan.FromMilliseconds(4000);
    public static readonly TimeSpan DefaultKillTimeout = TimeSpan.FromMilliseconds(1600);

    /// <summary>The longest any timeout may be (Limits.MaxTimeoutMilliseconds).</summary>
    public const int MaxMilliseconds = Cluster.Protocol.Limits.MaxTimeoutMilliseconds;

    public static TimeSpan Listen(int? parameter, IReadOnlyDictionary<string, string>? session, IReadOnlyDictionary<string, string> app) =>
        Resolve(parameter, ListenTimeoutVariable, session, app, DefaultListenTimeout);

    public static TimeSpan Graceful(int? parameter, IReadOnlyDictionary<string, string>? session, IReadOnlyDictionary<string, string> app) =>
        Resolve(parameter, GracefulTimeoutVariable, session, app, DefaultGracefulTimeout);

    public static TimeSpan Kill(int? parameter, int? appSetting) => Kill(parameter, appSetting, null, null);

    /// <summary>The kill timeout: the parameter, the app's -KillTimeout, then PM2_KILL_TIMEOUT of the session and of the app, then the default.</summary>
    public static TimeSpan Kill(int? parameter, int? appSetting, IReadOnlyDictionary<string, string>? session, IReadOnlyDictionary<string, string>? app) =>
        parameter is { } ms ? FromMs(ms)
        : appSetting is { } setting ? FromMs(setting)
        : FromVariable(session, KillTimeoutVariable) ?? FromVariable(app, KillTimeoutVariable) ?? DefaultKillTimeout;

    /// <summary>The kill timeout of an app when nothing but its own settings says what it is.</summary>
    public static TimeSpan Kill(Cluster.Protocol.StartSpec app) => Kill(null, app.KillTimeoutMs, null, app.Environment);

    private static TimeSpan Resolve(
        int? parameter,
        string variable,
        IReadOnlyDictionary<string, string>? session,
        IReadOnlyDictionary<string, string> app,
        TimeSpan fallback)
    {
        if (parameter is { } ms)
        {
            return FromMs(ms);
        }

        return FromVariable(session, variable) ?? FromVariable(app, variable) ?? fallback;
    }

    private static TimeSpan? FromVariable(IReadOnlyDictionary<string, string>? environment, string variable)
    {
        if (environment is not null
            && environment.TryGetValue(variable, out string? text)
            && int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int ms))
        {
            return FromMs(ms);
        }

        return null;
    }

    private static TimeSpan FromMs(int ms) => TimeSpan.FromMilliseconds(Math.Clamp(ms, 0, MaxMilliseconds));
}
