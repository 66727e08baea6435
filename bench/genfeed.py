#!/usr/bin/env python3
"""Writes a realistic RSS 2.0 feed of about SIZE bytes in one of two shapes:

- `mixed` (the default): CDATA HTML descriptions, content:encoded, dc:creator, categories, mostly
  English text with some Chinese and entities, as CMS feeds have them;
- `cjk`: the shape of the feeds users fetch through the wall, nodeseek's among them: Chinese
  titles with `&amp;`/`&lt;` and a character reference each, and CDATA bodies of mostly CJK text
  (full-width punctuation included) with some `<p>`/`<pre>` markup.

usage: genfeed.py SIZE OUT [mixed|cjk]     (SIZE like 100K, 1M, 10M)
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


HAN = ("服务器 网络 配置 教程 分享 问题 求助 推荐 测试 性能 安全 更新 部署 容器 内核 带宽 延迟 节点 脚本 面板 "
       "甲骨文 免费 机器 香港 日本 美国 线路 优化 流媒体 解锁 家宽 公网 域名 续费 证书 反代 隧道 监控 备份").split()
PUNCT = "，。：；！？、（）"


def han(rng, n):
    """`n` words of Chinese prose with full-width punctuation, a Latin word now and then."""
    out = []
    for _ in range(n):
        out.append(rng.choice(HAN) if rng.random() < 0.93 else rng.choice(WORDS))
        if rng.random() < 0.2:
            out.append(rng.choice(PUNCT))
    return "".join(out)


def cjk_item(rng, i):
    title = f"【{rng.choice(HAN)}】{han(rng, 8)} &amp; {han(rng, 2)} &lt;{i}&gt; &#8212; {rng.choice(HAN)}"
    paragraphs = "".join(f"<p>{han(rng, 60)}</p>" for _ in range(rng.randint(1, 3)))
    body = "".join(
        f"<p>{han(rng, 120)}</p>" + (f"<pre>apt install {rng.choice(WORDS)}\n{han(rng, 10)}</pre>" if rng.random() < 0.3 else "")
        for _ in range(rng.randint(2, 6)))
    return (f"<item><title>{title}</title><link>https://www.nodeseek.com/post-{600000 - i}-1</link>"
            f"<guid isPermaLink=\"true\">https://www.nodeseek.com/post-{600000 - i}-1</guid>"
            f"<dc:creator><![CDATA[{rng.choice(['用户甲', '小明', 'ops'])}]]></dc:creator>"
            f"<pubDate>Sat, 21 Nov 2026 {i % 24:02d}:00:00 GMT</pubDate><category>{rng.choice(HAN)}</category>"
            f"<description><![CDATA[{paragraphs}]]></description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>\n")


SHAPES = {"mixed": item, "cjk": cjk_item}


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
    make = SHAPES[sys.argv[3] if len(sys.argv) > 3 else "mixed"]
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
        it = make(rng, i)
        parts.append(it)
        size += len(it.encode())
        i += 1
    parts.append(tail)
    with open(out, "w", encoding="utf-8") as f:
        f.write("".join(parts))


if __name__ == "__main__":
    main()
