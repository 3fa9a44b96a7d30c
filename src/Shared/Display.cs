using System.Globalization;
using System.Text;

namespace Cluster.Protocol
{
    internal static class Display
    {
        /// <summary>Text as a message can safely show it: control characters escaped, length bounded.</summary>
        public static string Printable(string? text)
        {
            if (text is null)
            {
                return "";
            }

            string shown = text.Length > 80 ? text.Substring(0, 80) + "..." : text;
            var printable = new StringBuilder(shown.Length);
            foreach (char c in shown)
            {
                if (c < 0x20 || c == 0x7f)
                {
                    printable.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                }
                else
                {
                    printable.Append(c);
                }
            }

            return printable.ToString();
        }
    }
}
