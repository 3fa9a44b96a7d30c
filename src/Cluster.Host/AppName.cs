using System.Text.RegularExpressions;

namespace Cluster.Host;

/// <summary>App names become file names (logs) and are typed at a prompt: letters, digits, '.', '_' and '-'.</summary>
internal static partial class AppName
{
    public const int MaxLength = 64;

    public static bool IsValid(string? name) => name is not null && name.Length <= MaxLength && Pattern().IsMatch(name);

    public static void Validate(string? name)
    {
        if (!IsValid(name))
        {
            throw new ClusterException(
                "InvalidName",
                ErrorCategories.InvalidArgument,
                $"'{Printable(name)}' is not a valid app name. Use 1 to {MaxLength} letters, digits, '.', '_' or '-', starting with a letter or digit.",
                Printable(name));
        }
    }

    /// <summary>A name as it can safely be shown in a message: control characters escaped, length bounded.</summary>
    public static string Printable(string? name) => Cluster.Protocol.Display.Printable(name);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex Pattern();
}
