"""``tritongen k8s``: Kubernetes manifests (kustomize base + dev/prod overlays) from the same spec."""

from __future__ import annotations

from pathlib import Path

import click

from ..cli import resolve, spec_options


@click.command("k8s")
@click.argument("model", required=False)
@spec_options
@click.option("--replicas", type=int, default=1, show_default=True,
              help="Serving replicas (prod overlay; the HPA's minimum). Each is one pod, or one LeaderWorkerSet group.")
@click.option("--max-replicas", type=int, help="The HPA's maximum (default: 4 x --replicas).")
@click.option("--namespace", default="default", show_default=True, help="Namespace of every object.")
@click.option("--gpus-per-node", type=int, default=8, show_default=True,
              help="GPUs per node; tp x pp above it makes a LeaderWorkerSet across nodes.")
@click.option("--queue-time-target-ms", type=int, default=50, show_default=True,
              help="The HPA scales out when requests wait longer than this in Triton's queue (average).")
@click.option("--storage-class", help="StorageClass of the engine/checkpoint volume (default: the cluster's).")
@click.option("--storage-size", "storage_size_gi", type=int, metavar="GIB",
              help="Size of that volume in GiB (default: sized from the model).")
@click.option("--monitoring-namespace", default="monitoring", show_default=True,
              help="Namespace whose pods may scrape the metrics port.")
@click.option("--openai", is_flag=True, help="Also deploy the OpenAI-compatible front (needs --openai-image).")
@click.option("--openai-image", help="Image with tritongen installed, for --openai.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: deploy/<name>/k8s).")
@click.option("--force", is_flag=True, help="Replace the folder even if tritongen k8s did not write it (or it "
              "was edited).")
@click.option("--dry-run", is_flag=True, help="Print the files instead of writing them.")
@click.option("--check", "check_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Check a rendered tree (or an overlay of it) instead: schemas, GPUs per node, /dev/shm, probe "
                   "budget; one line per problem, exit code 4.")
def command(model, replicas, max_replicas, namespace, gpus_per_node, queue_time_target_ms, storage_class,
            storage_size_gi, monitoring_namespace, openai, openai_image, out, force, dry_run, check_dir,
            **kwargs) -> None:
    """Write Kubernetes manifests for MODEL: a kustomize base and dev/prod overlays.

    The rendered model repository becomes ConfigMaps mounted read-only at /models; a Job builds the engine
    (same steps and pinned image as `tritongen engine`) onto a PersistentVolumeClaim, skipped when it is
    there. One node: a Deployment; tp x pp above --gpus-per-node: a LeaderWorkerSet. Around it: Service,
    PodDisruptionBudget, NetworkPolicy, ServiceMonitor and an HPA on Triton's queue time. Every object is
    validated against the Kubernetes 1.32 schemas (and the CRDs' published schemas) before it is written.

    \b
    Examples:
      tritongen k8s llama3-8b --gpu h100 --dry-run
      tritongen k8s llama3-70b --gpu h100 --tp 8 --pp 2 --replicas 2
      kubectl apply -k deploy/llama3-8b/k8s/overlays/dev
      tritongen k8s --check deploy/llama3-8b/k8s
    """
    from ..errors import UsageError, ValidationFailed

    if check_dir is not None:
        if model:
            raise UsageError("--check DIR checks a rendered tree; give no MODEL with it")
        if gpus_per_node < 1:
            raise UsageError(f"--gpus-per-node {gpus_per_node}: a node has at least one GPU")
        from ..deploy.k8s.check import check

        report = check(check_dir, gpus_per_node=gpus_per_node)
        for line in report.problems:
            click.echo(click.style(line, fg="red"), err=True)
        if report.problems:
            raise ValidationFailed([f"{len(report.problems)} problem(s) in {check_dir}"])
        click.echo(f"{check_dir}: {report.objects} objects ok (Kubernetes 1.32 schemas, GPUs per node, /dev/shm, "
                   f"probe budget; read from {report.source})")
        return

    from pydantic import ValidationError

    from ..deploy.k8s import model as k8s_model
    from ..deploy.k8s import render, schemas
    from ..deploy.k8s.options import K8sOptions
    from ..deploy.k8s.yamlout import plain
    from ..errors import SpecError
    from ..names import inside

    try:
        opts = K8sOptions(namespace=namespace, replicas=replicas, max_replicas=max_replicas,
                          gpus_per_node=gpus_per_node, queue_time_target_ms=queue_time_target_ms,
                          storage_class=storage_class, storage_size_gi=storage_size_gi,
                          monitoring_namespace=monitoring_namespace, openai=openai, openai_image=openai_image)
    except ValidationError as exc:
        raise SpecError([f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                         for e in exc.errors()]) from None
    spec = resolve(model, kwargs)
    plan = k8s_model.build(spec, opts)
    problems = [f"{rel}: {p}" for rel, obj in render.objects(plan).items() for p in schemas.validate(plain(obj))]
    if problems:
        raise ValidationFailed(problems, hint="this is a tritongen bug: the rendered objects should always validate")
    tree = render.files(plan)
    if dry_run:
        click.echo(render.dry_run_text(tree), nl=False)
        return
    out_dir = out or inside(Path("deploy") / spec.repo_name / "k8s", Path("deploy"), "--name")
    render.write(tree, out_dir, force=force)
    n = plan.needs
    shape = (f"LeaderWorkerSet of {n.nodes} pods x {n.gpus_per_pod} GPUs" if n.multi_node else
             f"Deployment, {n.gpus_per_pod} GPU(s) per pod" if n.gpus_per_pod else "Deployment, no GPU")
    click.echo(f"wrote {out_dir} ({spec.route.value} route: {shape}; {replicas} replica(s))")
    click.echo(f"next: kubectl apply -k {out_dir}/overlays/dev   (check first: tritongen k8s --check {out_dir})")
