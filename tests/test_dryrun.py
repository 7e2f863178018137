import os

from conftest import run_workflow


def test_dry_run_of_1000_urls_needs_no_network(tmp_path):
    urls = [f"https://videos.invalid/clip/{i}.mp4" for i in range(990)]
    urls += [f"https://youtu.be/{i:011d}" for i in range(10)]
    (tmp_path / "urls.txt").write_text("# a big list\n" + "\n".join(urls) + "\n")
    # Any attempt to fetch would go to a dead proxy and fail.
    os.environ["ALL_PROXY"] = os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
    try:
        proc = run_workflow(tmp_path, {"url_files": ["urls.txt"]}, "-n", "--quiet", "rules")
    finally:
        del os.environ["ALL_PROXY"], os.environ["HTTPS_PROXY"]
    table = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if len(line.split()) == 2}
    assert table["download"] == "1000" and table["extract"] == "1000" and table["summary"] == "1"
    assert not (tmp_path / "results").exists()
