"use client";

import { useEffect, useState } from "react";
import { api, type ModelsInfo } from "@/lib/client-api";

const fallbackCategories = ["fast", "smart", "main", "vision", "code", "reason"];

export function ModelSelect({ value, onChange, disabled }: { value: string; onChange: (model: string) => void; disabled?: boolean }) {
  const [models, setModels] = useState<ModelsInfo | null>(null);

  useEffect(() => {
    api.models().then(setModels, () => setModels(null));
  }, []);

  const categories = models ? Object.entries(models.categories) : fallbackCategories.map((name) => [name, null] as const);
  const installed = models?.installed ?? [];
  const isKnown = categories.some(([name]) => name === value) || installed.includes(value);

  return (
    <select
      aria-label="Model"
      data-testid="model-select"
      value={value}
      disabled={disabled}
      onChange={(e) => onChange(e.target.value)}
      className="max-w-40 rounded-lg border border-zinc-300 bg-transparent px-2 py-1 text-sm dark:border-zinc-700 dark:bg-zinc-900"
    >
      <optgroup label="Categories">
        {categories.map(([name, info]) => (
          <option key={name} value={name} disabled={info ? !info.available : false}>
            {info?.model ? `${name} · ${info.model}` : info && !info.available ? `${name} (unavailable)` : name}
          </option>
        ))}
      </optgroup>
      {installed.length > 0 && (
        <optgroup label="Installed models">
          {installed.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </optgroup>
      )}
      {!isKnown && <option value={value}>{value}</option>}
    </select>
  );
}
