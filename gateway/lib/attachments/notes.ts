import type { Lang } from "../commands/texts";

// What a chat is told about a file it cannot receive as a file, in the persona's language. Pure and
// deterministic: a resend after a crash says exactly the same.

/** 2.4 MB, 830 KB, 12 B: the size as a person reads it. */
export function humanSize(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1).replace(/\.0$/, "")} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} B`;
}

interface FileFacts {
  name: string;
  size: number;
  caption: string | null;
}

const head = ({ name, size, caption }: FileFacts) => `📎 ${name} (${humanSize(size)})${caption ? `: ${caption}` : ""}`;

export const attachmentNotes = {
  en: {
    inWebchat: (file: FileFacts) => `${head(file)}. This chat cannot receive files; it is in the webchat.`,
    link: (file: FileFacts, url: string, until: string) => `${head(file)}: ${url} (link valid until ${until})`,
    tooLarge: (file: FileFacts, limit: number) => `${head(file)} is too large to send here (at most ${humanSize(limit)}); it is in the webchat.`,
    unavailable: (name: string) => `(The file ${name} could not be fetched from the agent, so it is not attached.)`,
  },
  fr: {
    inWebchat: (file: FileFacts) => `${head(file)}. Cette discussion ne reçoit pas de fichiers ; il est dans le webchat.`,
    link: (file: FileFacts, url: string, until: string) => `${head(file)} : ${url} (lien valable jusqu'au ${until})`,
    tooLarge: (file: FileFacts, limit: number) => `${head(file)} est trop gros pour être envoyé ici (${humanSize(limit)} au plus) ; il est dans le webchat.`,
    unavailable: (name: string) => `(Le fichier ${name} n'a pas pu être récupéré auprès de l'agent ; il n'est pas joint.)`,
  },
} satisfies Record<Lang, unknown>;
