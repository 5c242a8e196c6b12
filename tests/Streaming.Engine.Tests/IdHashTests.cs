using System.Text;
using Streaming.Engine.Model;

namespace Streaming.Engine.Tests;

public sealed class IdHashTests
{
    /// <summary>A straightforward FNV-1a 64 written from the published definition, as an independent reference.</summary>
    private static ulong Reference(byte[] data)
    {
        ulong hash = 0xcbf29ce484222325;
        foreach (var b in data)
        {
            hash ^= b;
            hash *= 0x100000001b3;
        }

        return hash;
    }

    [Theory]
    [InlineData("", 0xcbf29ce484222325UL)]
    [InlineData("a", 0xaf63dc4c8601ec8cUL)]
    [InlineData("foobar", 0x85944171f73967e8UL)]
    public void Published_test_vectors(string input, ulong expected)
    {
        Assert.Equal(expected, IdHash.Fnv1a64(input));
        Assert.Equal(expected, IdHash.Fnv1a64(Encoding.ASCII.GetBytes(input)));
        Assert.Equal(expected, Reference(Encoding.ASCII.GetBytes(input)));
    }

    [Theory]
    [InlineData("é")]
    [InlineData("café")]
    [InlineData("order-東京-42")]
    [InlineData("😀")]
    [InlineData("abc\u0080def")]
    [InlineData("ascii-prefix-then-ü-and-more-ascii")]
    public void Non_ascii_string_hashes_its_utf8_bytes(string input)
    {
        var utf8 = Encoding.UTF8.GetBytes(input);

        Assert.Equal(Reference(utf8), IdHash.Fnv1a64(input));
        Assert.Equal(IdHash.Fnv1a64(utf8), IdHash.Fnv1a64(input));
    }

    [Fact]
    public void Non_ascii_differs_from_hashing_utf16_code_units()
    {
        // "é" is C3 A9 in UTF-8; hashing the single UTF-16 unit 0xE9 would be a different (wrong) function.
        Assert.Equal(Reference([0xC3, 0xA9]), IdHash.Fnv1a64("é"));
        Assert.NotEqual(Reference([0xE9]), IdHash.Fnv1a64("é"));
    }

    [Fact]
    public void String_and_byte_overloads_agree_on_random_strings()
    {
        const int seed = 1_234;
        var rng = new Random(seed);
        for (var i = 0; i < 2000; i++)
        {
            var chars = new char[rng.Next(0, 24)];
            for (var j = 0; j < chars.Length; j++)
            {
                // Mostly ASCII, sometimes Latin-1, CJK or a valid surrogate pair.
                chars[j] = rng.Next(6) switch
                {
                    0 => (char)rng.Next(0x80, 0x800),
                    1 => (char)rng.Next(0x4E00, 0x9FFF),
                    _ => (char)rng.Next(0x20, 0x7F),
                };
            }

            var s = new string(chars) + (rng.Next(8) == 0 ? "😀" : "");
            Assert.True(Reference(Encoding.UTF8.GetBytes(s)) == IdHash.Fnv1a64(s), $"seed {seed}, case {i}: '{s}'");
        }
    }
}
