"""Benchmark: attachment text extraction (issue 13), a 100-page Chinese PDF, and a DOCX and an XLSX
of about the same text, through the child process the upload uses (``attachments.runner``).

Makes the files in a temporary folder: the PDF with fpdf2 and the WenQuanYi Micro Hei font
(``--pages``, default 100; about 600 Chinese characters a page, a 4x4 table every fifth page),
the DOCX with python-docx (the same paragraphs and tables), the XLSX with openpyxl (five sheets,
60,000 characters in all; the extraction keeps 200 rows a sheet and says how many more there
were). Each file is extracted ``--runs`` times (default 5) by ``run_extraction`` with the upload's
limits (768 MB address space, 30 s): the median and the worst wall time as the web worker waits
for it (process start, imports, extraction, JSON), the child's own extraction time, and the
child's peak RSS (its ``ru_maxrss``, reported by the child). For comparison, one in-process pass of
pdfminer.six, the fallback for PDFs whose text PDFium gives garbled.

    python -m bench.extract [--quick] [--pages 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from attachments.limits import Limits
from attachments.runner import run_extraction
from bench.common import Check, exit_status, report, save

FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
MEMORY_MB = 768  # the upload's default (ATTACHMENT_EXTRACT_MEMORY_MB)
TIMEOUT_S = 30.0  # the upload's default (ATTACHMENT_EXTRACT_TIMEOUT_SECONDS)
# Targets for 100 pages on 2 cores: well inside the upload's timeout and memory limit.
TARGET_PDF_SECONDS = 5.0
TARGET_PEAK_MIB = 300

PARAGRAPH = (
    "第{n}页：本季度公司在华东、华北和华南三个地区的销售额均有明显增长，其中华东地区增长最快，"
    "达到了百分之二十三。新产品线的推出吸引了大量年轻用户，线上渠道的订单数量比去年同期翻了一番。"
    "与此同时，原材料价格上涨和物流成本增加给利润率带来了一定压力，财务部门建议优化供应链管理，"
    "并与主要供应商重新谈判长期合同。人力资源方面，研发团队新增了四十名工程师，主要负责人工智能"
    "和数据分析平台的建设。下一季度的重点工作包括：完善客户服务体系，提高售后响应速度；扩大海外"
    "市场的推广力度，特别是东南亚和中东地区；继续控制管理费用，将行政开支降低百分之五。董事会"
    "将在下个月召开会议，审议年度预算和中长期发展规划，并听取各事业部负责人的工作汇报。"
)
TABLE = [
    ["地区", "第一季度", "第二季度", "同比增长"],
    ["华东", "一千二百万", "一千五百万", "百分之二十三"],
    ["华北", "九百万", "一千万", "百分之十一"],
    ["华南", "八百万", "八百八十万", "百分之十"],
]


def make_pdf(path: Path, pages: int) -> None:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF()
    pdf.add_font("wqy", fname=FONT)
    pdf.set_font("wqy", size=11)
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.multi_cell(0, 7, PARAGRAPH.format(n=n) * 2)
        if n % 5 == 0:
            pdf.ln(4)
            with pdf.table(headings_style=FontFace(emphasis="")) as table:
                for cells in TABLE:
                    row = table.row()
                    for cell in cells:
                        row.cell(cell)
    pdf.output(str(path))


def make_docx(path: Path, pages: int) -> None:
    import docx

    document = docx.Document()
    for n in range(1, pages + 1):
        if n % 10 == 1:
            document.add_heading(f"第{n // 10 + 1}章", level=1)
        document.add_paragraph(PARAGRAPH.format(n=n) * 2)
        if n % 5 == 0:
            table = document.add_table(rows=len(TABLE), cols=len(TABLE[0]))
            for r, cells in enumerate(TABLE):
                for c, text in enumerate(cells):
                    table.cell(r, c).text = text
    document.save(str(path))


def make_xlsx(path: Path, pages: int) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    rows_per_sheet = pages * 20 // 5  # about 600 characters for every "page"
    for s in range(5):
        sheet = book.create_sheet(f"地区{s + 1}")
        sheet.append(["编号", "城市", "产品", "销售额", "备注"])
        for n in range(rows_per_sheet):
            sheet.append([n, "上海", "智能手表", 1000 + n, "线上渠道订单增长"])
    book.save(str(path))


def measure(path: Path, kind: str, runs: int) -> dict[str, Any]:
    walls, inner, peaks = [], [], []
    last: dict[str, Any] = {}
    for _ in range(runs):
        started = time.perf_counter()
        last = run_extraction(str(path), kind, Limits(), timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)
        walls.append(time.perf_counter() - started)
        if not last.get("ok"):
            break
        inner.append(last["stats"]["seconds"])
        peaks.append(last["stats"]["peak_rss_kib"] / 1024)
    return {
        "ok": bool(last.get("ok")),
        "code": last.get("code"),
        "file KB": round(path.stat().st_size / 1024),
        "chars out": last.get("chars", 0),
        "pages out": len(last.get("pages") or []),
        "text": last.get("text", ""),
        "runs": len(walls),
        "wall s median": round(statistics.median(walls), 3),
        "wall s max": round(max(walls), 3),
        "child extraction s median": round(statistics.median(inner), 3) if inner else None,
        "child peak RSS MiB median": round(statistics.median(peaks), 1) if peaks else None,
        "child peak RSS MiB max": round(max(peaks), 1) if peaks else None,
    }


def pdfminer_pass(path: Path) -> dict[str, Any]:
    from attachments.extract import _pdfminer_pages

    started = time.perf_counter()
    pages = _pdfminer_pages(str(path), 10_000)
    return {
        "seconds (in process, 1 run)": round(time.perf_counter() - started, 3),
        "chars": sum(len(p) for p in pages),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 pages, 2 runs")
    parser.add_argument("--pages", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--no-pdfminer", action="store_true", help="skip the pdfminer.six pass")
    args = parser.parse_args(argv)
    pages = args.pages or (10 if args.quick else 100)
    runs = args.runs or (2 if args.quick else 5)
    if not os.path.exists(FONT):
        print(f"skipped: no Chinese font at {FONT} (Debian's fonts-wqy-microhei)", flush=True)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="chatsite-bench-extract-", dir="/tmp"))
    try:
        files = {"pdf": folder / "report.pdf", "docx": folder / "report.docx"}
        files["xlsx"] = folder / "report.xlsx"
        started = time.perf_counter()
        make_pdf(files["pdf"], pages)
        make_docx(files["docx"], pages)
        make_xlsx(files["xlsx"], pages)
        print(f"made the files in {time.perf_counter() - started:.1f} s", flush=True)
        figures: dict[str, Any] = {
            "cores": os.cpu_count(),
            "limits": f"{MEMORY_MB} MB address space, {TIMEOUT_S:g} s",
        }
        checks: list[Check] = []
        rows = []
        for kind, path in files.items():
            figure = measure(path, kind, runs)
            text = figure.pop("text")
            figures[f"{kind} ({pages} pages of text)"] = figure
            rows.append((kind, figure))
            print(f"  {kind}: {figure}", flush=True)
            expected = "华东地区增长最快" if kind != "xlsx" else "智能手表"
            checks.append(
                Check(f"{kind}: extracted", int(figure["ok"]), "== 1", figure["ok"], True)
            )
            checks.append(
                Check(
                    f"{kind}: Chinese text out",
                    int(expected in text),
                    "== 1",
                    expected in text,
                    True,
                )
            )
        pdf = figures[f"pdf ({pages} pages of text)"]
        checks.append(
            Check(
                "pdf: pages out", pdf["pages out"], f"== {pages}", pdf["pages out"] == pages, True
            )
        )
        if pages >= 100 and pdf["ok"]:
            checks.append(
                Check(
                    "pdf: wall seconds, median",
                    pdf["wall s median"],
                    f"<= {TARGET_PDF_SECONDS}",
                    pdf["wall s median"] <= TARGET_PDF_SECONDS,
                )
            )
            checks.append(
                Check(
                    "pdf: child peak RSS (MiB), max",
                    pdf["child peak RSS MiB max"],
                    f"<= {TARGET_PEAK_MIB}",
                    pdf["child peak RSS MiB max"] <= TARGET_PEAK_MIB,
                )
            )
        if not args.no_pdfminer:
            figures["pdf via pdfminer.six (the garbled-text fallback)"] = pdfminer_pass(
                files["pdf"]
            )
        print("\n  kind   wall s (median/max)   child s   peak RSS MiB (median/max)   chars")
        for kind, f in rows:
            print(
                f"  {kind:<5}  {f['wall s median']:>7} / {f['wall s max']:<7}  "
                f"{f['child extraction s median']!s:>8}   "
                f"{f['child peak RSS MiB median']!s:>8} / {f['child peak RSS MiB max']!s:<8}  "
                f"{f['chars out']:>9,}"
            )
        result = report(
            f"Attachment extraction: {pages} pages of Chinese, {runs} runs each, in the child",
            figures,
            checks,
        )
        save("extract" + ("-quick" if args.quick else ""), result)
        return exit_status(result)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
