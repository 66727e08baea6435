#!/usr/bin/env python3
"""Writes a realistic RSS 2.0 feed of about SIZE bytes: CDATA HTML descriptions, content:encoded,
dc:creator, categories, Chinese text and entities, as CMS feeds have them.

usage: genfeed.py SIZE OUT     (SIZE like 100K, 1M, 10M)
"""
import random
import sys

WORDS = ("feed reader cloudflare solver chrome session lambda bucket cache latency items update "
         "server client request response header format indent escape namespace channel").split()
ZH = "新闻 科技 中文 测试 你好 世界 更新 服务器 缓存 订阅 内容 标题 描述 作者 分类".split()


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) if rng.random() < 0.8 else rng.choice(ZH) for _ in range(n))


def item(rng, i):
    title = f"{sentence(rng, 6)} &amp; {rng.choice(ZH)} #{i} &#8212; &quot;quoted&quot;"
    paragraphs = "".join(f"<p>{sentence(rng, 30)} <a href=\"https://example.test/a?x={i}&amp;y=2\">link</a></p>"
                         for _ in range(rng.randint(2, 5)))
    body = "".join(f"<h2>{sentence(rng, 4)}</h2><p>{sentence(rng, 60)}</p><img src=\"https://example.test/{i}.png\" alt=\"{rng.choice(ZH)}\"/>"
                   for _ in range(rng.randint(3, 8)))
    cats = "".join(f"<category>{rng.choice(ZH + WORDS)}</category>" for _ in range(rng.randint(1, 4)))
    return (f"<item><title>{title}</title><link>https://example.test/posts/{i}</link>"
            f"<guid isPermaLink=\"false\">post-{i}</guid><dc:creator><![CDATA[{rng.choice(['Alice', '王小明', 'Bob'])}]]></dc:creator>"
            f"<pubDate>Sat, 21 Nov 2026 {i % 24:02d}:00:00 GMT</pubDate>{cats}"
            f"<description><![CDATA[{paragraphs}]]></description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>\n")


def rss(size):
    """A realistic feed of about `size` characters as a string, the same for the same size: the
    benches' fake solver and origin serve it."""
    rng = random.Random(size)
    head = ('<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>bench</title><link>https://example.test/</link>'
            '<description>d</description><lastBuildDate>Sat, 21 Nov 2026 00:00:00 GMT</lastBuildDate>\n')
    items, total, i = [], len(head), 0
    while total < size:
        items.append(item(rng, i))
        total += len(items[-1])
        i += 1
    return head + "".join(items) + "</channel></rss>\n"


def main():
    size_arg, out = sys.argv[1], sys.argv[2]
    units = {"K": 1000, "M": 1000_000}
    target = int(float(size_arg[:-1]) * units[size_arg[-1]]) if size_arg[-1] in units else int(size_arg)
    rng = random.Random(42)
    head = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">\n'
            '<channel><title>Bench 新闻 &amp; Notes</title><link>https://example.test/</link>'
            '<description>A generated feed</description>'
            '<atom:link href="https://example.test/rss.xml" rel="self" type="application/rss+xml"/>'
            '<lastBuildDate>Sun, 22 Nov 2026 04:00:00 GMT</lastBuildDate>\n')
    tail = "</channel></rss>\n"
    parts, size, i = [head], len(head.encode()) + len(tail), 0
    while size < target:
        it = item(rng, i)
        parts.append(it)
        size += len(it.encode())
        i += 1
    parts.append(tail)
    with open(out, "w", encoding="utf-8") as f:
        f.write("".join(parts))


if __name__ == "__main__":
    main()
