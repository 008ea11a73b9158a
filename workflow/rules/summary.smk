# Collect every run of the experiment: one table row per run, an HTML view, one figure.
# On a cluster these run on the submitting machine: each reads every run's summary and takes
# about a second, less than a Slurm job would wait in the queue.


localrules:
    aggregate,
    table,
    plot_summary,
    plot_checkpoints,
    plot_grid,
    gallery,
    gallery_page,


rule aggregate:
    input:
        summaries,
    output:
        "results/{experiment}/llc.parquet",
    log:
        "logs/{experiment}/aggregate.log",
    benchmark:
        "benchmarks/{experiment}/aggregate.tsv"
    threads: 1
    shell:
        "lambda-hat aggregate {input} --out {output} > {log} 2>&1"


rule table:
    input:
        summaries,
    output:
        report(
            "results/{experiment}/llc.html",
            caption="../report/table.rst",
            category="Summary",
            labels={"figure": "table of estimates"},
        ),
    log:
        "logs/{experiment}/table.log",
    benchmark:
        "benchmarks/{experiment}/table.tsv"
    threads: 1
    shell:
        "lambda-hat aggregate {input} --out {output} > {log} 2>&1"


rule plot_summary:
    input:
        "results/{experiment}/llc.parquet",
    output:
        report(
            f"{PLOT_DIR}/summary.png",
            caption="../report/summary.rst",
            category="Summary",
            labels={"figure": "estimates vs truth"},
        ),
    log:
        "logs/{experiment}/plot_summary.log",
    benchmark:
        "benchmarks/{experiment}/plot_summary.tsv"
    threads: 1
    shell:
        "lambda-hat plot-summary --table {input} --out {output} > {log} 2>&1"


rule plot_grid:
    input:
        "results/{experiment}/llc.parquet",
    output:
        report(
            f"{PLOT_DIR}/grid.png",
            caption="../report/grid.rst",
            category="Summary",
            labels={"figure": "λ̂ along the grid"},
        ),
    log:
        "logs/{experiment}/plot_grid.log",
    benchmark:
        "benchmarks/{experiment}/plot_grid.tsv"
    threads: 1
    shell:
        "lambda-hat plot-grid --table {input} --out {output} > {log} 2>&1"


rule plot_checkpoints:
    input:
        table="results/{experiment}/llc.parquet",
        arrays=declared_target_arrays,
    output:
        report(
            f"{PLOT_DIR}/checkpoints.png",
            caption="../report/checkpoints.rst",
            category="Summary",
            labels={"figure": "λ̂ along training"},
        ),
    log:
        "logs/{experiment}/plot_checkpoints.log",
    benchmark:
        "benchmarks/{experiment}/plot_checkpoints.tsv"
    threads: 1
    shell:
        "lambda-hat plot-checkpoints --table {input.table} "
        "--targets-dir results/{wildcards.experiment}/targets --out {output} > {log} 2>&1"

# Opt-in (copies of every figure, to publish), and under results/ so that it never edits the
# checkout's docs/:  snakemake --cores 2 gallery
rule gallery:
    input:
        f"results/{EXPERIMENT.name}/gallery/index.md",


rule gallery_page:
    input:
        summaries=summaries,
        figures=figures,
    output:
        "results/{experiment}/gallery/index.md",
    log:
        "logs/{experiment}/gallery.log",
    benchmark:
        "benchmarks/{experiment}/gallery.tsv"
    threads: 1
    shell:
        "lambda-hat gallery {input.summaries} --plots-dir results/{wildcards.experiment}/plots "
        "--out $(dirname {output}) > {log} 2>&1"
