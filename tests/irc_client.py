"""An IRC client for the tests, built on the `irc` library from PyPI.

    python3 tests/irc_client.py HOST PORT NICK

Prints every event it gets as one JSON object per line
({"type", "source", "target", "args"}), and does what each line of its
standard input says: `privmsg TARGET TEXT`, `action TARGET TEXT`,
`notice TARGET TEXT`, `nick NAME`, `join CHANNEL`, `part CHANNEL`,
`names CHANNEL`, `whois NICK`, `who CHANNEL`, `list`, `topic CHANNEL`,
`quit [REASON]`. Exits when the server closes the connection.
"""

import json
import queue
import sys
import threading

import irc.client


def main():
    host, port, nick = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    reactor = irc.client.Reactor()
    connection = reactor.server().connect(host, port, nick, username=nick, ircname="Test " + nick)
    commands = queue.Queue()
    done = threading.Event()

    def show(conn, event):
        source = event.source.nick if event.source and "!" in event.source else event.source
        print(json.dumps({"type": event.type, "source": source, "target": event.target,
                          "args": list(event.arguments)}), flush=True)

    def disconnected(conn, event):
        show(conn, event)
        done.set()

    reactor.add_global_handler("all_events", show, -10)
    reactor.add_global_handler("disconnect", disconnected, -20)

    def read_stdin():
        for line in sys.stdin:
            commands.put(line.rstrip("\n"))

    threading.Thread(target=read_stdin, daemon=True).start()
    while not done.is_set():
        reactor.process_once(0.05)
        while not commands.empty():
            word, _, rest = commands.get().partition(" ")
            target, _, text = rest.partition(" ")
            if word == "privmsg":
                connection.privmsg(target, text)
            elif word == "action":
                connection.action(target, text)
            elif word == "notice":
                connection.notice(target, text)
            elif word == "nick":
                connection.nick(target)
            elif word == "join":
                connection.join(target)
            elif word == "part":
                connection.part(target)
            elif word == "names":
                connection.names([target])
            elif word == "whois":
                connection.whois([target])
            elif word == "who":
                connection.who(target)
            elif word == "list":
                connection.list()
            elif word == "topic":
                connection.topic(target)
            elif word == "quit":
                connection.quit(rest)


if __name__ == "__main__":
    main()
