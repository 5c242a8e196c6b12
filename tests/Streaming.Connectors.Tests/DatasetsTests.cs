using Streaming.Connectors.Datasets;

namespace Streaming.Connectors.Tests;

public sealed class DatasetsTests
{
    [Fact]
    public void Unknown_dataset_name_is_an_argument_error()
    {
        using var file = new DatasetFile(TestData.PathOf(TaobaoFixture.FileName));

        var ex = Assert.Throws<ArgumentException>(() => Datasets.Datasets.Read("retailrocket", file));
        Assert.Contains("retailrocket", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Datasets.Datasets.DefaultFile("retailrocket"));
    }

    [Fact]
    public void Missing_file_names_the_path()
    {
        using var dir = new TempDirectory();
        var path = dir.File("no_such_dataset.csv.gz");

        var ex = Assert.Throws<FileNotFoundException>(() => new DatasetFile(path));
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Equal(path, ex.FileName);
    }

    [Fact]
    public void Default_files_of_every_dataset_exist_in_the_data_directory()
    {
        Assert.Equal(["online-retail", "taobao", "bank-callcenter"], Datasets.Datasets.Names);
        foreach (var name in Datasets.Datasets.Names)
        {
            var path = Path.Combine(TestData.Directory, Datasets.Datasets.DefaultFile(name));
            Assert.True(File.Exists(path), $"{name}: {path}");
        }
    }

    [Fact]
    public void A_file_of_another_dataset_is_rejected_by_its_header()
    {
        using var file = new DatasetFile(TestData.PathOf(TaobaoFixture.FileName));

        var ex = Assert.Throws<InvalidDataException>(() => Datasets.Datasets.Read(Datasets.Datasets.OnlineRetail, file).First());
        Assert.Contains("Online Retail", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Line_numbers_and_progress_follow_reading()
    {
        using var file = new DatasetFile(TestData.PathOf(TaobaoFixture.FileName));
        Assert.Equal(0, file.LineNumber);

        Assert.Equal("user_id,item_id,category_id,behavior_type,timestamp", file.ReadLine());
        Assert.Equal(1, file.LineNumber);
        var lines = 1L;
        while (file.ReadLine() is not null)
        {
            lines++;
        }

        Assert.Equal(lines, file.LineNumber);
        Assert.Equal(1.0, file.Progress);
        Assert.Null(file.ReadLine());
        Assert.Equal(lines, file.LineNumber);
    }
}
