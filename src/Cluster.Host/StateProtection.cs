using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Security.Cryptography;

namespace Cluster.Host;

/// <summary>
/// The state file's encryption on Windows: DPAPI for the current user (CryptProtectData), so that only this user,
/// on this machine, can read the apps' environments, and a file another user wrote is not taken for the owner's.
/// Called directly rather than through System.Security.Cryptography.ProtectedData, to keep the host a single
/// Native AOT executable.
/// </summary>
[SupportedOSPlatform("windows")]
internal static unsafe partial class StateProtection
{
    private const int UiForbidden = 0x1; // CRYPTPROTECT_UI_FORBIDDEN: the host has no desktop to prompt on

    /// <summary>Ties the encrypted data to this use, so another program's DPAPI blob of the same user is not accepted.</summary>
    private static readonly byte[] Entropy = "Cluster host state file, version 1"u8.ToArray();

    public static byte[] Protect(byte[] plain) => Transform(plain, protect: true);

    public static byte[] Unprotect(byte[] encrypted) => Transform(encrypted, protect: false);

    private static byte[] Transform(byte[] input, bool protect)
    {
        fixed (byte* inputBytes = input)
        fixed (byte* entropyBytes = Entropy)
        {
            var inBlob = new DataBlob { Size = input.Length, Data = (IntPtr)inputBytes };
            var entropyBlob = new DataBlob { Size = Entropy.Length, Data = (IntPtr)entropyBytes };
            DataBlob outBlob;
            bool done = protect
                ? CryptProtectData(ref inBlob, null, ref entropyBlob, IntPtr.Zero, IntPtr.Zero, UiForbidden, out outBlob)
                : CryptUnprotectData(ref inBlob, IntPtr.Zero, ref entropyBlob, IntPtr.Zero, IntPtr.Zero, UiForbidden, out outBlob);
            if (!done)
            {
                throw new CryptographicException(Marshal.GetLastPInvokeError());
            }

            try
            {
                var output = new byte[outBlob.Size];
                Marshal.Copy(outBlob.Data, output, 0, outBlob.Size);
                return output;
            }
            finally
            {
                if (outBlob.Data != IntPtr.Zero)
                {
                    if (!protect)
                    {
                        new Span<byte>((void*)outBlob.Data, outBlob.Size).Clear();
                    }

                    LocalFree(outBlob.Data);
                }
            }
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct DataBlob
    {
        public int Size;
        public IntPtr Data;
    }

    [LibraryImport("crypt32.dll", EntryPoint = "CryptProtectData", SetLastError = true, StringMarshalling = StringMarshalling.Utf16)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool CryptProtectData(
        ref DataBlob dataIn, string? description, ref DataBlob entropy, IntPtr reserved, IntPtr prompt, int flags, out DataBlob dataOut);

    [LibraryImport("crypt32.dll", EntryPoint = "CryptUnprotectData", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool CryptUnprotectData(
        ref DataBlob dataIn, IntPtr description, ref DataBlob entropy, IntPtr reserved, IntPtr prompt, int flags, out DataBlob dataOut);

    [LibraryImport("kernel32.dll", EntryPoint = "LocalFree")]
    private static partial IntPtr LocalFree(IntPtr memory);
}
