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
    public static string Printable(string? name)
    {
        if (name is null)
        {
            return "";
        }

        string shown = name.Length > 80 ? name[..80] + "..." : name;
        return ControlCharacters().Replace(shown, m => $"\\x{(int)m.Value[0]:x2}");
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex Pattern();

    [GeneratedRegex("[\\x00-\\x1f\\x7f]")]
    private static partial Regex ControlCharacters();
}
