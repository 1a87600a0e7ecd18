package io.peft4j.peft;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.nn.Mlp;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Numbers in a saved adapter_config.json that do not fit their field are refused, never truncated or wrapped. */
class AdapterConfigFileTest {
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "\"r\": 4.5 | 'r' = 4.5 must be an integer",
            "\"r\": 4294967300 | 'r' = 4294967300 is out of range [1, 65536]",
            "\"r\": -2 | 'r' = -2 is out of range",
            "\"lora_alpha\": \"8\" | 'lora_alpha' = '8' must be a number",
            "\"lora_dropout\": 1.5 | 'lora_dropout' = 1.5 is out of range [0, 1)",
            "\"use_rslora\": 1 | 'use_rslora' = 1 must be true or false"})
    void aValueThatDoesNotFitIsRefusedByName(String field, String expected, @TempDir Path tmp) throws IOException {
        Mlp mlp = new Mlp(TestSupport.backend(), Mlp.Activation.RELU, 1, 13, 17, 5);
        PeftModel.wrap(mlp, LoraConfig.builder().r(4).targetModules("fc1").build()).save(tmp);
        ObjectMapper mapper = new ObjectMapper();
        @SuppressWarnings("unchecked")
        Map<String, Object> json = mapper.readValue(tmp.resolve(PeftModel.CONFIG_FILE).toFile(), Map.class);
        String key = field.substring(1, field.indexOf('"', 1));
        json.put(key, mapper.readValue(field.substring(field.indexOf(':') + 1), Object.class));
        Files.writeString(tmp.resolve(PeftModel.CONFIG_FILE), mapper.writeValueAsString(json));
        Mlp fresh = new Mlp(TestSupport.backend(), Mlp.Activation.RELU, 1, 13, 17, 5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PeftModel.load(fresh, tmp));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }
}
