checkpoint search:
    output:
        "results/search/{query}.json",
    log:
        "logs/search/{query}.log",
    conda:
        "../envs/download.yaml"
    resources:
        downloads=1,
        mem_mb=1000,
        runtime=30,
    params:
        query=get_search_query,
        search=config["search"],
        download=config["download"],
    script:
        "../scripts/search.py"
