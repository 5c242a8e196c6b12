using System.Globalization;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Npgsql;
using Streaming.Engine.Events;
using Streaming.Host.Cli;
using Streaming.Host.Hosting;
using Streaming.Connectors.Persistence;
using Streaming.Host.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;
using static Streaming.Host.Tests.Deployment.DeploymentFiles;

namespace Streaming.Host.Tests.Deployment;

/// <summary>
/// The deployment files (<c>deploy/docker</c>, <c>deploy/k8s</c>, <c>deploy/local/cluster</c>) checked statically, since
/// no container can run here: they parse; the image builds the host project and runs its assembly; every
/// <c>Streaming__…</c> variable is a key the engine reads, and each node's settings are accepted by the engine's own
/// checks; ports, seed nodes, probes, topics, scrape targets and Grafana provisioning agree with the code and each other.
/// </summary>
public sealed partial class DeploymentFilesTests
{
    private const string TestNamespace = "test-namespace";

    [Fact]
    public void Every_yaml_file_under_deploy_parses_and_kubernetes_documents_name_their_kind()
    {
        Assert.NotEmpty(YamlFiles);
        var failures = new List<string>();
        foreach (var file in YamlFiles)
        {
            try
            {
                var documents = LoadYaml(file);
                if (documents.Count == 0 || documents.Any(d => d is not YamlMappingNode))
                {
                    failures.Add($"{file}: not one or more mappings");
                }

                if (file.StartsWith(KubernetesDir, StringComparison.Ordinal))
                {
                    foreach (var doc in documents.Where(d => Scalar(d, "kind") is null || Scalar(d, "apiVersion") is null))
                    {
                        failures.Add($"{file}: a document without kind or apiVersion");
                    }
                }
            }
            catch (YamlDotNet.Core.YamlException ex)
            {
                failures.Add($"{file}: {ex.Message}");
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [Fact]
    public void Dockerfile_publishes_the_host_project_and_runs_its_assembly_as_a_non_root_user()
    {
        var instructions = Dockerfile();
        var froms = instructions.Where(i => i.Keyword == "FROM").ToList();
        var framework = XDocument.Load(Path.Combine(Root, "Directory.Build.props")).Descendants("TargetFramework").Single().Value;
        Assert.StartsWith("net", framework, StringComparison.Ordinal);
        var dotnetVersion = framework[3..];

        // The publish step: a project that exists, the host (its assembly holds Program), built on the SDK of its framework.
        var publish = instructions.Single(i => i.Keyword == "RUN" && i.Arguments.Contains("dotnet publish", StringComparison.Ordinal));
        var project = PublishedProject().Match(publish.Arguments).Groups[1].Value;
        Assert.True(File.Exists(Path.Combine(Root, project)), $"the Dockerfile publishes {project}, which does not exist");
        var assemblyName = XDocument.Load(Path.Combine(Root, project)).Descendants("AssemblyName").Single().Value;
        Assert.Equal(typeof(Streaming.Host.Program).Assembly.GetName().Name, assemblyName);
        Assert.Equal($"mcr.microsoft.com/dotnet/sdk:{dotnetVersion}", froms.Single(f => f.Stage == publish.Stage).Arguments.Split(' ')[0]);
        Assert.Equal($"mcr.microsoft.com/dotnet/aspnet:{dotnetVersion}", froms[^1].Arguments.Split(' ')[0]);

        // Every COPY from the build context names something that exists, and the context filter keeps it.
        var ignored = File.ReadAllLines(DockerfilePath + ".dockerignore")
            .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#') && !l.Contains('*', StringComparison.Ordinal)).ToList();
        foreach (var copy in instructions.Where(i => i.Keyword == "COPY"))
        {
            var (flags, sources, _) = Copy(copy);
            if (flags.ContainsKey("from"))
            {
                continue;
            }

            foreach (var source in sources)
            {
                Assert.True(File.Exists(Path.Combine(Root, source)) || Directory.Exists(Path.Combine(Root, source)), $"line {copy.Line}: COPY {source}: not in the repository");
                Assert.False(ignored.Any(p => (source + "/").StartsWith(p.TrimEnd('/') + "/", StringComparison.Ordinal)), $"line {copy.Line}: COPY {source} is excluded by Dockerfile.dockerignore");
            }
        }

        // The restore step sees every project of the host's closure and every Directory.Build.props they import.
        var restore = instructions.First(i => i.Stage == publish.Stage && i.Keyword == "RUN" && i.Arguments.Contains("dotnet restore", StringComparison.Ordinal));
        var copiedBeforeRestore = instructions.TakeWhile(i => i != restore)
            .Where(i => i.Keyword == "COPY" && i.Stage == restore.Stage && !Copy(i).Flags.ContainsKey("from"))
            .SelectMany(i => Copy(i).Sources).ToList();
        foreach (var needed in RestoreInputs(project))
        {
            Assert.True(copiedBeforeRestore.Any(s => s == needed || needed.StartsWith(s.TrimEnd('/') + "/", StringComparison.Ordinal)), $"{needed} is not copied before `dotnet restore` (line {restore.Line})");
        }

        // The console's chart library: npm ci on the lock file, its node_modules copied where the project embeds it from.
        var csproj = File.ReadAllText(Path.Combine(Root, project));
        var nodeModules = Path.GetRelativePath(Root, Path.Combine(Path.GetDirectoryName(Path.Combine(Root, project))!,
            NodeModulesProperty().Match(csproj).Groups[1].Value)).Replace('\\', '/').TrimEnd('/');
        var npm = instructions.Single(i => i.Keyword == "RUN" && i.Arguments.StartsWith("npm ci", StringComparison.Ordinal));
        Assert.Contains(instructions, i => i.Keyword == "COPY" && i.Stage == npm.Stage && Copy(i).Sources.Contains(nodeModules[..^"node_modules".Length] + "package-lock.json"));
        Assert.Contains(instructions, i => i.Keyword == "COPY" && i.Stage == publish.Stage && Copy(i).Flags.GetValueOrDefault("from") == npm.Stage
                                           && Copy(i).Destination.TrimEnd('/') == nodeModules && i.Line < publish.Line);

        // The runtime stage: the published output, `dotnet <AssemblyName>.dll run`, not root.
        var runtime = froms[^1].Stage;
        var output = PublishOutput().Match(publish.Arguments).Groups[1].Value;
        Assert.Contains(instructions, i => i.Keyword == "COPY" && i.Stage == runtime && Copy(i).Flags.GetValueOrDefault("from") == publish.Stage && Copy(i).Sources.Contains(output));
        Assert.Equal(["dotnet", assemblyName + ".dll"], ExecForm(instructions.Single(i => i.Keyword == "ENTRYPOINT")));
        Assert.Equal([RunCommand.Create().Name], ExecForm(instructions.Single(i => i.Keyword == "CMD")));
        var user = instructions.Last(i => i.Keyword == "USER" && i.Stage == runtime).Arguments;
        Assert.DoesNotContain(user, new[] { "root", "0", "0:0" });
    }

    [Fact]
    public void Every_Streaming_environment_variable_of_the_deployment_files_is_a_key_the_engine_reads()
    {
        var names = new List<(string File, string Name)>();
        names.AddRange(DockerfileEnvironment().Select(kv => ("Dockerfile", kv.Key)));
        foreach (var (service, environment) in ComposeEnvironments())
        {
            names.AddRange(environment.Select(kv => ($"docker-compose.yml {service}", kv.Key)));
        }

        foreach (var (pod, environment) in PodEnvironments())
        {
            names.AddRange(environment.Select(kv => ($"k8s {pod}", kv.Key)));
        }

        names.AddRange(StreamingName().Matches(File.ReadAllText(LocalClusterScript)).Select(m => ("deploy/local/cluster", m.Value)));
        var streaming = names.Where(n => n.Name.StartsWith("Streaming__", StringComparison.Ordinal)).ToList();

        // Each file contributes names (a file that lost them all would pass the check below without checking anything).
        Assert.All(new[] { "Dockerfile", "docker-compose.yml", "k8s", "deploy/local/cluster" }, f => Assert.Contains(streaming, n => n.File.StartsWith(f, StringComparison.Ordinal)));
        var unread = ConfigurationKeys.Unread(streaming.Select(n => n.Name));
        Assert.True(unread.Count == 0, "keys the engine does not read: " + string.Join(", ", streaming.Where(n => unread.Contains(n.Name)).Select(n => $"{n.Name} ({n.File})")));
    }

    [Fact]
    public void Compose_engine_nodes_form_one_cluster_the_engine_accepts_on_the_image_ports()
    {
        var expose = ExposedPorts();
        var services = Mapping(LoadYaml(ComposePath)[0], "services");
        var engines = ComposeEnvironments().ToDictionary(e => e.Service, e => ConfigurationKeys.Settings([.. DockerfileEnvironment(), .. e.Environment]));
        Assert.True(engines.Count >= 3, $"{engines.Count} engine services");
        var routes = GetRoutes();
        var seeds = engines.Values.First().SeedNodes;
        foreach (var (name, settings) in engines)
        {
            var service = Child(services, name)!;
            var httpPort = ConfigurationKeys.UrlPort(settings.Urls);
            Assert.Contains(httpPort, expose);
            Assert.Contains(settings.ClusterPort, expose);
            Assert.Equal(name, settings.ClusterHostname);
            Assert.Equal(StoreProvider.PostgreSql, settings.StoreProvider);
            Assert.Equal(seeds, settings.SeedNodes);

            // Every node mirrors to the compose file's Redis service (one prefix: a cluster's seq is each customer's version).
            Assert.NotNull(Child(services, settings.RedisConnection?.Split(':')[0] ?? "(no Streaming__Redis__Connection)"));
            Assert.All(Sequence(service, "ports").Select(p => ((YamlScalarNode)p).Value!), p => Assert.Equal(httpPort, int.Parse(p.Split(':')[^1], CultureInfo.InvariantCulture)));

            // The health check calls a route of the API on the node's HTTP port.
            var check = string.Join(" ", Sequence(Child(service, "healthcheck")!, "test").Select(t => ((YamlScalarNode)t).Value));
            var call = HealthCheckCall().Match(check);
            Assert.True(call.Success, $"{name}: health check '{check}' calls no /dev/tcp/HOST/PORT GET PATH");
            Assert.Equal(httpPort, int.Parse(call.Groups["port"].Value, CultureInfo.InvariantCulture));
            Assert.Contains(call.Groups["path"].Value, routes);
            Assert.Contains(call.Groups["path"].Value, new[] { "/readyz", "/healthz" });

            // Kafka: the advertised listener of the kafka service.
            var kafka = settings.BootstrapServers!.Split(':')[0];
            Assert.Contains($"//{settings.BootstrapServers}", Scalars(Mapping(Child(services, kafka)!, "environment"))["KAFKA_ADVERTISED_LISTENERS"], StringComparison.Ordinal);

            // PostgreSQL: the postgres service, its user, database and password.
            var store = new NpgsqlConnectionStringBuilder(settings.StoreConnectionString);
            var postgres = Scalars(Mapping(Child(services, store.Host!)!, "environment")).ToDictionary(kv => kv.Key, kv => Interpolate(kv.Value), StringComparer.Ordinal);
            Assert.Equal((postgres["POSTGRES_USER"], postgres["POSTGRES_DB"], postgres["POSTGRES_PASSWORD"]), (store.Username, store.Database, store.Password));
        }

        // Seeds: engine services on their cluster ports; the first is started before the others, which wait until it serves.
        Assert.NotEmpty(seeds);
        foreach (var seed in seeds)
        {
            var (host, port) = (seed[..seed.LastIndexOf(':')], int.Parse(seed[(seed.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture));
            Assert.True(engines.TryGetValue(host, out var node) && node.ClusterPort == port, $"seed {seed} is not an engine service on its cluster port");
        }

        var first = seeds[0][..seeds[0].LastIndexOf(':')];
        Assert.Null(Child(Child(services, first)!, "depends_on") is YamlMappingNode d ? d.Children.Keys.FirstOrDefault(k => engines.ContainsKey(((YamlScalarNode)k).Value!)) : null);
        foreach (var other in engines.Keys.Where(e => e != first))
        {
            var condition = Child(Mapping(Child(services, other)!, "depends_on"), first);
            Assert.True(condition is not null && Scalar(condition, "condition") == "service_healthy", $"{other} does not wait for {first} to be healthy");
        }

        // The topics kafka-init creates: every topic of the engine, with the partition count the engines are given.
        var init = string.Join("\n", Sequence(Child(services, "kafka-init")!, "command").Select(c => ((YamlScalarNode)c).Value));
        Assert.Equal(Topics.All.Order(StringComparer.Ordinal), TopicLoop().Match(init).Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
        Assert.All(engines.Values, s => Assert.Equal(s.Partitions, int.Parse(PartitionsFlag().Match(init).Groups[1].Value, CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void Kubernetes_statefulset_matches_the_image_the_code_and_its_services()
    {
        var expose = ExposedPorts();
        var documents = KubernetesDocuments();
        Assert.DoesNotContain(documents, d => Scalar(d, "kind") == "Secret");
        var set = documents.Single(d => Scalar(d, "kind") == "StatefulSet");
        var spec = Child(set, "spec")!;
        var replicas = int.Parse(Scalar(spec, "replicas")!, CultureInfo.InvariantCulture);
        var headlessName = Scalar(spec, "serviceName")!;
        var podLabels = Scalars(Mapping(Mapping(Child(spec, "template")!, "metadata"), "labels"));
        var container = Sequence(Child(Child(spec, "template")!, "spec")!, "containers").Single();
        var containerPorts = Sequence(container, "ports").ToDictionary(p => Scalar(p, "name")!, p => int.Parse(Scalar(p, "containerPort")!, CultureInfo.InvariantCulture));
        Assert.Equal(expose.Order(), containerPorts.Values.Order());
        Assert.Equal([RunCommand.Create().Name], Sequence(container, "args").Select(a => ((YamlScalarNode)a).Value!));

        // Probes: readiness on /readyz, liveness on /healthz, both routes of the API on the HTTP port.
        var routes = GetRoutes();
        int ProbePort(string probe) => ResolvePort(Scalar(Child(Child(container, probe)!, "httpGet")!, "port")!, containerPorts);
        Assert.Equal("/readyz", Scalar(Child(Child(container, "readinessProbe")!, "httpGet")!, "path"));
        Assert.Equal("/healthz", Scalar(Child(Child(container, "livenessProbe")!, "httpGet")!, "path"));
        foreach (var probe in new[] { "readinessProbe", "livenessProbe", "startupProbe" }.Where(p => Child(container, p) is not null))
        {
            Assert.Contains(Scalar(Child(Child(container, probe)!, "httpGet")!, "path")!, routes);
        }

        // Each pod's settings, as the engine reads them: Kubernetes API discovery, no seed nodes, the pod's IP as its
        // address (what the API lists for it), the management endpoint on the container port Cluster Bootstrap looks up by
        // name, and a label selector that selects exactly this template's pods.
        var pods = PodEnvironments().ToList();
        Assert.Equal(replicas, pods.Count);
        for (var i = 0; i < replicas; i++)
        {
            var settings = ConfigurationKeys.Settings([.. DockerfileEnvironment(), .. pods[i].Environment]);
            var httpPort = ConfigurationKeys.UrlPort(settings.Urls);
            Assert.Equal(containerPorts.Values.Order(), new[] { httpPort, settings.ClusterPort, settings.Discovery.ManagementPort }.Order());
            Assert.Equal(httpPort, ProbePort("readinessProbe"));
            Assert.Equal(httpPort, ProbePort("livenessProbe"));
            Assert.Equal(PodIp(i), settings.ClusterHostname);
            Assert.Empty(settings.SeedNodes);
            Assert.Equal(DiscoveryMethod.Kubernetes, settings.Discovery.Method);
            Assert.Equal(settings.Discovery.ManagementPort, containerPorts.GetValueOrDefault(ClusterDiscoverySettings.ManagementPortName));
            var selector = string.Format(CultureInfo.InvariantCulture, settings.Discovery.PodLabelSelector ?? "app={0}", settings.Discovery.ServiceName);
            Assert.All(selector.Split(','), term => Assert.Equal(term[(term.IndexOf('=', StringComparison.Ordinal) + 1)..], podLabels.GetValueOrDefault(term[..term.IndexOf('=', StringComparison.Ordinal)])));

            // The first cluster forms once this many pods see each other: never more than the set has, and with more than
            // one the pods must start together (OrderedReady would wait for pod 0, which waits for a second pod).
            Assert.InRange(settings.Discovery.RequiredContactPoints, 1, replicas);
            Assert.True(settings.Discovery.RequiredContactPoints == 1 || Scalar(spec, "podManagementPolicy") == "Parallel", "pods that must see each other to form a cluster need podManagementPolicy: Parallel");
            Assert.Equal(StoreProvider.PostgreSql, settings.StoreProvider);
            Assert.True(settings.RedisConnection is null && settings.BootstrapServers is not null);
        }

        // RBAC: the pods' ServiceAccount is bound to a Role in this namespace that may get, list and watch pods.
        var account = Scalar(Child(Child(spec, "template")!, "spec")!, "serviceAccountName");
        Assert.Contains(documents, d => Scalar(d, "kind") == "ServiceAccount" && Scalar(Child(d, "metadata")!, "name") == account);
        var binding = documents.Single(d => Scalar(d, "kind") == "RoleBinding" && Sequence(d, "subjects").Any(x => Scalar(x, "kind") == "ServiceAccount" && Scalar(x, "name") == account));
        Assert.Equal("Role", Scalar(Child(binding, "roleRef")!, "kind"));
        var role = documents.Single(d => Scalar(d, "kind") == "Role" && Scalar(Child(d, "metadata")!, "name") == Scalar(Child(binding, "roleRef")!, "name"));
        static IEnumerable<string> Values(YamlNode rule, string key) => Sequence(rule, key).Select(v => ((YamlScalarNode)v).Value!);
        Assert.Contains(Sequence(role, "rules"), r => Values(r, "apiGroups").Contains("") && Values(r, "resources").Contains("pods")
                                                      && new[] { "get", "list", "watch" }.All(Values(r, "verbs").Contains));

        // The headless service governs the set, publishes pods before they are ready (they join first), carries remoting.
        var services = documents.Where(d => Scalar(d, "kind") == "Service").ToList();
        var headless = services.Single(s => Scalar(Child(s, "metadata")!, "name") == headlessName);
        Assert.Equal("None", Scalar(Child(headless, "spec")!, "clusterIP"));
        Assert.Equal("true", Scalar(Child(headless, "spec")!, "publishNotReadyAddresses"));
        var clusterPort = ConfigurationKeys.Settings([.. DockerfileEnvironment(), .. pods[0].Environment]).ClusterPort;
        Assert.Contains(Sequence(Child(headless, "spec")!, "ports"), p => ResolvePort(Scalar(p, "targetPort")!, containerPorts) == clusterPort);
        var http = services.Single(s => Scalar(Child(s, "spec")!, "clusterIP") != "None");
        var httpTarget = ConfigurationKeys.UrlPort(ConfigurationKeys.Settings([.. DockerfileEnvironment(), .. pods[0].Environment]).Urls);
        Assert.Contains(Sequence(Child(http, "spec")!, "ports"), p => ResolvePort(Scalar(p, "targetPort")!, containerPorts) == httpTarget);
        foreach (var service in services)
        {
            Assert.All(Scalars(Mapping(Child(service, "spec")!, "selector")), kv => Assert.Equal(kv.Value, podLabels.GetValueOrDefault(kv.Key)));
        }

        // The disruption budget: one node at a time, selecting these pods.
        var budget = documents.Single(d => Scalar(d, "kind") == "PodDisruptionBudget");
        Assert.Equal("1", Scalar(Child(budget, "spec")!, "maxUnavailable"));
        var budgetSelector = Scalars(Mapping(Mapping(Child(budget, "spec")!, "selector"), "matchLabels"));
        Assert.NotEmpty(budgetSelector);
        Assert.All(budgetSelector, kv => Assert.Equal(kv.Value, podLabels.GetValueOrDefault(kv.Key)));
    }

    [Fact]
    public void Kustomization_lists_every_kubernetes_manifest()
    {
        var kustomization = LoadYaml(Path.Combine(KubernetesDir, "kustomization.yaml"))[0];
        var listed = Sequence(kustomization, "resources").Select(r => ((YamlScalarNode)r).Value!).Order(StringComparer.Ordinal);
        var manifests = Directory.EnumerateFiles(KubernetesDir, "*.yaml").Select(Path.GetFileName).Where(f => f != "kustomization.yaml").Order(StringComparer.Ordinal);
        Assert.Equal(manifests, listed);
    }

    [Fact]
    public async Task Compose_prometheus_scrapes_the_engine_services_and_its_config_passes_promtool()
    {
        var services = Mapping(LoadYaml(ComposePath)[0], "services");
        var prometheus = Child(services, "prometheus")!;
        var mounts = Mounts(prometheus);
        var configTarget = Sequence(prometheus, "command").Select(c => ((YamlScalarNode)c).Value!)
            .Select(c => ConfigFileFlag().Match(c)).Single(m => m.Success).Groups[1].Value;
        var config = LoadYaml(mounts[configTarget])[0];

        // Targets: exactly the engine services on their HTTP port, in the job alerts.yaml selects (`streaming`).
        var expected = ComposeEnvironments()
            .Select(e => $"{e.Service}:{ConfigurationKeys.UrlPort(ConfigurationKeys.Settings([.. DockerfileEnvironment(), .. e.Environment]).Urls)}")
            .Order(StringComparer.Ordinal);
        var job = Sequence(config, "scrape_configs").Single(j => Scalar(j, "job_name") == "streaming");
        var targets = Sequence(job, "static_configs").SelectMany(s => Sequence(s, "targets")).Select(t => ((YamlScalarNode)t).Value!);
        Assert.Equal(expected, targets.Order(StringComparer.Ordinal));

        // The container's /etc/prometheus laid out from the mounts, checked by promtool with its rule files.
        var dir = TestEnvironment.NewTempDir("prometheus-compose");
        try
        {
            var configDir = Path.GetDirectoryName(configTarget)!.Replace('\\', '/');
            foreach (var (target, source) in mounts.Where(m => m.Key.StartsWith(configDir + "/", StringComparison.Ordinal) && File.Exists(m.Value)))
            {
                var copy = Path.Combine(dir, target[(configDir.Length + 1)..]);
                Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
                File.Copy(source, copy);
            }

            var ruleFiles = Sequence(config, "rule_files").Count();
            Assert.True(ruleFiles >= 2, $"{ruleFiles} rule files");
            var (code, output) = await Promtool.RunAsync(["check", "config", Path.GetFileName(configTarget)], dir);
            Assert.True(code == 0, $"promtool check config exited {code}:\n{output}");
            Assert.Contains($"{ruleFiles} rule files found", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Compose_grafana_is_provisioned_with_every_dashboard_and_the_compose_prometheus()
    {
        var services = Mapping(LoadYaml(ComposePath)[0], "services");
        var mounts = Mounts(Child(services, "grafana")!);

        // The dashboard provider's path is a mount of the directory that holds every dashboard of dashboards/grafana.
        var providerFiles = mounts.Where(m => m.Key.StartsWith("/etc/grafana/provisioning/dashboards/", StringComparison.Ordinal)).Select(m => m.Value).ToList();
        Assert.NotEmpty(providerFiles);
        var dashboards = Directory.EnumerateFiles(Path.Combine(Root, "dashboards", "grafana"), "*.json").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(dashboards);
        var provided = new List<string?>();
        foreach (var provider in providerFiles.SelectMany(f => Sequence(LoadYaml(f)[0], "providers")))
        {
            var path = Scalar(Child(provider, "options")!, "path")!;
            Assert.True(mounts.TryGetValue(path, out var source) && Directory.Exists(source), $"the provider's path {path} is not a mounted directory");
            provided.AddRange(Directory.EnumerateFiles(source, "*.json").Select(Path.GetFileName));
        }

        Assert.Equal(dashboards, provided.Order(StringComparer.Ordinal));

        // The data source: the compose Prometheus, on the port it listens on.
        var datasources = mounts.Where(m => m.Key.StartsWith("/etc/grafana/provisioning/datasources/", StringComparison.Ordinal))
            .SelectMany(m => Sequence(LoadYaml(m.Value)[0], "datasources")).ToList();
        var prometheus = Assert.Single(datasources, d => Scalar(d, "type") == "prometheus");
        var url = new Uri(Scalar(prometheus, "url")!);
        var prometheusPorts = Sequence(Child(services, url.Host) ?? throw new InvalidOperationException($"no service {url.Host}"), "ports")
            .Select(p => int.Parse(((YamlScalarNode)p).Value!.Split(':')[^1], CultureInfo.InvariantCulture));
        Assert.Contains(url.Port, prometheusPorts);
    }

    [Fact]
    public void Local_cluster_script_passes_only_options_the_cli_knows()
    {
        var script = File.ReadAllText(LocalClusterScript);
        foreach (var command in new[] { RunCommand.Create(), BrokerCommand.Create() })
        {
            var known = command.Options.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
            var invocations = Regex.Matches(script, @"dotnet ""\$dll"" " + command.Name + @"\b(.*?)(?:>|$)", RegexOptions.Singleline | RegexOptions.Multiline).ToList();
            Assert.NotEmpty(invocations);
            foreach (Match invocation in invocations)
            {
                var flags = Flag().Matches(invocation.Groups[1].Value).Select(m => m.Value).ToList();
                Assert.NotEmpty(flags);
                Assert.All(flags, f => Assert.Contains(f, known));
            }
        }
    }

    /// <summary>The Dockerfile's EXPOSE ports.</summary>
    private static IReadOnlySet<int> ExposedPorts() =>
        Dockerfile().Where(i => i.Keyword == "EXPOSE")
            .SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(p => int.Parse(p.Split('/')[0], CultureInfo.InvariantCulture)).ToHashSet();

    /// <summary>The runtime stage's ENV (the image's environment).</summary>
    private static List<KeyValuePair<string, string>> DockerfileEnvironment()
    {
        var instructions = Dockerfile();
        var runtime = instructions.Last(i => i.Keyword == "FROM").Stage;
        return [.. instructions.Where(i => i.Keyword == "ENV" && i.Stage == runtime).SelectMany(EnvPairs)];
    }

    /// <summary>The services of the compose file that set <c>Streaming__…</c> variables, and their environment (interpolated).</summary>
    private static IEnumerable<(string Service, List<KeyValuePair<string, string>> Environment)> ComposeEnvironments()
    {
        foreach (var (key, service) in Mapping(LoadYaml(ComposePath)[0], "services").Children)
        {
            if (Child(service, "environment") is YamlMappingNode environment)
            {
                var pairs = Scalars(environment).Select(kv => new KeyValuePair<string, string>(kv.Key, Interpolate(kv.Value))).ToList();
                if (pairs.Any(kv => kv.Key.StartsWith("Streaming__", StringComparison.Ordinal)))
                {
                    yield return (((YamlScalarNode)key).Value!, pairs);
                }
            }
        }
    }

    private static List<YamlNode> KubernetesDocuments() =>
        [.. Directory.EnumerateFiles(KubernetesDir, "*.yaml").Where(f => Path.GetFileName(f) != "kustomization.yaml").SelectMany(LoadYaml)];

    /// <summary>
    /// Each pod's environment as Kubernetes builds it (pod N of the StatefulSet, in <see cref="TestNamespace"/>): the
    /// ConfigMaps of <c>envFrom</c>, then <c>env</c> in order, <c>$(VAR)</c> expanded from the variables before it, field
    /// references filled in and secret references replaced by a placeholder.
    /// </summary>
    private static IEnumerable<(string Pod, List<KeyValuePair<string, string>> Environment)> PodEnvironments()
    {
        var documents = KubernetesDocuments();
        var set = documents.Single(d => Scalar(d, "kind") == "StatefulSet");
        var name = Scalar(Child(set, "metadata")!, "name")!;
        var container = Sequence(Child(Child(Child(set, "spec")!, "template")!, "spec")!, "containers").Single();
        var replicas = int.Parse(Scalar(Child(set, "spec")!, "replicas")!, CultureInfo.InvariantCulture);
        for (var ordinal = 0; ordinal < replicas; ordinal++)
        {
            var pod = $"{name}-{ordinal}";
            var env = new List<KeyValuePair<string, string>>();
            foreach (var from in Sequence(container, "envFrom"))
            {
                var mapName = Scalar(Child(from, "configMapRef")!, "name");
                var map = documents.Single(d => Scalar(d, "kind") == "ConfigMap" && Scalar(Child(d, "metadata")!, "name") == mapName);
                env.AddRange(Scalars(Mapping(map, "data")));
            }

            foreach (var variable in Sequence(container, "env"))
            {
                string value;
                if (Child(variable, "valueFrom") is { } source)
                {
                    value = Child(source, "fieldRef") is { } field
                        ? Scalar(field, "fieldPath") switch
                        {
                            "metadata.name" => pod,
                            "metadata.namespace" => TestNamespace,
                            "status.podIP" => PodIp(ordinal),
                            var other => throw new InvalidOperationException("field " + other + " not simulated"),
                        }
                        : Child(source, "secretKeyRef") is not null
                            ? "Host=secret-placeholder;Username=u;Database=d"
                            : throw new InvalidOperationException("valueFrom not simulated");
                }
                else
                {
                    var known = env.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
                    value = KubernetesReference().Replace(Scalar(variable, "value") ?? "", m => known.GetValueOrDefault(m.Groups[1].Value, m.Value));
                }

                env.Add(new(Scalar(variable, "name")!, value));
            }

            yield return (pod, env);
        }
    }

    /// <summary>The IP address the simulation gives pod <paramref name="ordinal"/> (<c>status.podIP</c>).</summary>
    private static string PodIp(int ordinal) => "10.1.0." + (10 + ordinal).ToString(CultureInfo.InvariantCulture);

    /// <summary>A service's or container's port given by number or by the container port's name.</summary>
    private static int ResolvePort(string port, IReadOnlyDictionary<string, int> named) =>
        int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) ? number : named[port];

    /// <summary>A compose service's bind mounts: container path → host path (resolved against the compose file's directory).</summary>
    private static Dictionary<string, string> Mounts(YamlNode service) =>
        Sequence(service, "volumes").Select(v => ((YamlScalarNode)v).Value!.Split(':'))
            .Where(p => p[0].StartsWith('.') || p[0].StartsWith('/'))
            .ToDictionary(p => p[1], p => Path.GetFullPath(Path.Combine(DockerDir, p[0])), StringComparer.Ordinal);

    /// <summary>The files <c>dotnet restore</c> of <paramref name="project"/> reads: its project closure and the build props.</summary>
    private static IEnumerable<string> RestoreInputs(string project)
    {
        var projects = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([Path.GetFullPath(Path.Combine(Root, project))]);
        while (pending.TryPop(out var path))
        {
            if (!projects.Add(path))
            {
                continue;
            }

            foreach (var reference in XDocument.Load(path).Descendants("ProjectReference"))
            {
                pending.Push(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, reference.Attribute("Include")!.Value)));
            }
        }

        var inputs = new SortedSet<string>(StringComparer.Ordinal) { "Directory.Packages.props", "global.json" };
        foreach (var path in projects)
        {
            inputs.Add(Relative(path));
            for (var dir = new DirectoryInfo(Path.GetDirectoryName(path)!); dir is not null && dir.FullName.Length >= Root.Length; dir = dir.Parent)
            {
                var props = Path.Combine(dir.FullName, "Directory.Build.props");
                if (File.Exists(props))
                {
                    inputs.Add(Relative(props));
                }
            }
        }

        return inputs;
    }

    private static string Relative(string path) => Path.GetRelativePath(Root, path).Replace('\\', '/');

    [GeneratedRegex(@"dotnet publish (\S+\.csproj)")]
    private static partial Regex PublishedProject();

    [GeneratedRegex(@"(?:-o|--output) (\S+)")]
    private static partial Regex PublishOutput();

    [GeneratedRegex(@"<ConsoleNodeModules>\$\(MSBuildThisFileDirectory\)([^<]+)</ConsoleNodeModules>")]
    private static partial Regex NodeModulesProperty();

    [GeneratedRegex(@"\bStreaming__\w+")]
    private static partial Regex StreamingName();

    [GeneratedRegex(@"/dev/tcp/[^/\s]+/(?<port>\d+)\b.*?GET (?<path>/\S*) ")]
    private static partial Regex HealthCheckCall();

    [GeneratedRegex(@"for topic in ([^;]+);")]
    private static partial Regex TopicLoop();

    [GeneratedRegex(@"--partitions (\d+)")]
    private static partial Regex PartitionsFlag();

    [GeneratedRegex(@"^--config\.file=(\S+)$")]
    private static partial Regex ConfigFileFlag();

    [GeneratedRegex(@"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex KubernetesReference();

    [GeneratedRegex(@"(?<![\w-])--[a-z][a-z-]*")]
    private static partial Regex Flag();
}
